package revisions

import "github.com/rego-injector/rego-injector/engine/inject"

// The labels that choose a revision, and where tags are kept. Istio's label is read as Istio reads
// it; ours sits beside it with the same meaning and wins over it on the same object.
const (
	// IstioRevLabel on a namespace or a pod names a revision or a tag.
	IstioRevLabel = "istio.io/rev"
	// RevLabel is our own label, with the same meaning as IstioRevLabel.
	RevLabel = "rego-injector.io/rev"
	// DefaultRevision is the revision the unnamed --bundle serves, and the tag that
	// istio-injection=enabled (or rego-injector.io/inject=enabled) stands for.
	DefaultRevision = inject.DefaultRev
	// TagsConfigMap is the ConfigMap, in the injector's namespace, whose data maps each tag to the
	// revision it points at.
	TagsConfigMap = "rego-injector-tags"
	// TagLabel and RevisionLabel mark the webhook configurations written for one tag or revision.
	TagLabel      = "rego-injector.io/tag"
	RevisionLabel = "rego-injector.io/revision"
)
