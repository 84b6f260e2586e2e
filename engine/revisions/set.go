package revisions

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/rego-injector/rego-injector/engine/cluster"
	"github.com/rego-injector/rego-injector/engine/injector"
	"github.com/rego-injector/rego-injector/engine/policy"
)

// Tags maps each tag to the revision it points at, as the cluster says now.
type Tags interface {
	Tags() map[string]string
	Synced() bool
}

// StaticTags are tags given once, on the command line or in a test.
type StaticTags map[string]string

// Tags implements Tags.
func (t StaticTags) Tags() map[string]string { return t }

// Synced implements Tags.
func (StaticTags) Synced() bool { return true }

// Set is the revisions served, each an injector with its own bundle, memo and reloader, and the
// router that picks one per admission. It is safe for concurrent use.
type Set struct {
	router *Router
	// selections remembers the router's answers by everything they depend on (Router.key): the
	// pods of one namespace mostly share one.
	selections *lru.Cache[string, injector.Selection]
	revisions  map[string]*injector.Injector
	names      []string
	tags       Tags
	namespaces cluster.Namespaces
	forced     string
}

// selectionMemo is how many distinct selections a Set remembers: a few per namespace.
const selectionMemo = 4096

// NewSet serves revisions (by name) with tags, looking namespaces up in ns. It refuses no
// revisions, and a name without an injector: every admission needs one to answer it.
func NewSet(router *Router, revisions map[string]*injector.Injector, tags Tags, ns cluster.Namespaces) (*Set, error) {
	if len(revisions) == 0 {
		return nil, errors.New("serve revisions: none given")
	}
	for name, inj := range revisions {
		if inj == nil {
			return nil, fmt.Errorf("serve revisions: revision %q has no injector", name)
		}
	}
	if tags == nil {
		tags = StaticTags{}
	}
	selections, _ := lru.New[string, injector.Selection](selectionMemo) // only a size <= 0 fails
	return &Set{router: router, selections: selections, revisions: revisions, names: slices.Sorted(maps.Keys(revisions)), tags: tags, namespaces: ns}, nil
}

// Forced returns a copy of s where name (a revision or a tag) answers every pod, whatever revision
// its labels name: the offline commands' --revision. Whether the labels enable injection at all
// is still theirs to say.
func (s *Set) Forced(name string) *Set {
	c := *s
	c.forced = name
	return &c
}

// ErrUnknownName is the error of Resolve for a name that is neither a tag nor a revision served.
var ErrUnknownName = errors.New("no revision or tag has that name")

// Resolve returns the revision served that name stands for, as the selection policy resolves a
// label: the revision a tag of that name points at (tag is then name), else the revision of that
// name. A tag pointing at a revision not served, and a name of nothing, are errors that list what
// there is.
func (s *Set) Resolve(name string) (rev, tag string, err error) {
	tags := s.tags.Tags()
	if rev, ok := tags[name]; ok {
		if s.revisions[rev] == nil {
			return "", "", fmt.Errorf("tag %s points at revision %s, which is not served (revisions: %s)", name, rev, strings.Join(s.names, ", "))
		}
		return rev, name, nil
	}
	if s.revisions[name] != nil {
		return name, "", nil
	}
	known := make([]string, 0, len(tags))
	for _, t := range slices.Sorted(maps.Keys(tags)) {
		known = append(known, t+" -> "+tags[t])
	}
	return "", "", fmt.Errorf("%s: %w (revisions: %s; tags: %s)", name, ErrUnknownName, strings.Join(s.names, ", "), strings.Join(known, ", "))
}

// Names lists the revisions served, sorted.
func (s *Set) Names() []string { return s.names }

// Injector returns the injector serving revision name, or nil.
func (s *Set) Injector(name string) *injector.Injector { return s.revisions[name] }

// Ready reports whether the tags are read and every revision is active, except those excused: a
// revision whose source has failed before it ever delivered a bundle must not keep the others out
// of service (its own pods get an error naming it, and the webhooks' failurePolicy applies).
func (s *Set) Ready(excused func(name string) bool) bool {
	for name, inj := range s.revisions {
		if !inj.Ready() && (excused == nil || !excused(name)) {
			return false
		}
	}
	return s.tags.Synced()
}

// named wraps the error of revision name's injector so that it says which revision failed.
func named(name string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("revision %s: %w", name, err)
}

// Status is each revision's active bundle revision, and the tags, for /readyz.
func (s *Set) Status() map[string]any {
	revs := make(map[string]string, len(s.revisions))
	for name, inj := range s.revisions {
		revs[name] = inj.Revision()
	}
	return map[string]any{"revisions": revs, "tags": s.tags.Tags()}
}

// Select chooses the revision that answers a, and returns a with the namespace and the selection
// filled in; the injector is nil when no served revision answers it.
func (s *Set) Select(ctx context.Context, a injector.Admission) (injector.Admission, *injector.Injector, error) {
	podNamespace, podLabels := podMeta(a.Raw)
	name := a.Request.Namespace
	if name == "" {
		name = podNamespace
	}
	if name == "" {
		name = "default"
	}
	ns, err := s.namespaces.Namespace(ctx, name)
	if err != nil {
		return a, nil, fmt.Errorf("look up the pod's namespace: %w", err)
	}
	in := Input{
		Namespace: ns.Name, NamespaceLabs: ns.Labels, PodLabels: podLabels,
		Revisions: s.names, Tags: s.tags.Tags(), Forced: s.forced,
	}
	key := s.router.key(in)
	sel, ok := s.selections.Get(key)
	if !ok {
		if sel, err = s.router.Select(ctx, in); err != nil {
			return a, nil, err
		}
		s.selections.Add(key, sel)
	}
	a.Namespace, a.Selection = &ns, &sel
	return a, s.revisions[sel.Name], nil
}

// Inject answers a with the revision its labels choose. A pod whose labels name no served
// revision is left unchanged, with the selection's warnings.
func (s *Set) Inject(ctx context.Context, a injector.Admission) (injector.Result, error) {
	a, inj, err := s.Select(ctx, a)
	if err != nil {
		return injector.Result{}, err
	}
	if inj == nil {
		return s.unanswered(a), nil
	}
	res, err := inj.Inject(ctx, a)
	return res, named(a.Selection.Name, err)
}

// Validate judges a with the revision its labels choose. A pod whose labels name no served
// revision is judged by the revision of the default tag (else the first served), so that a made-up
// name does not dodge validation; the selection's warnings are added to the verdict's, and the
// result's Selection names that revision.
func (s *Set) Validate(ctx context.Context, a injector.Admission) (injector.Validation, error) {
	a, inj, err := s.Select(ctx, a)
	if err != nil {
		return injector.Validation{}, err
	}
	if inj == nil {
		name := s.fallback()
		res, err := s.revisions[name].Validate(ctx, a)
		res.Verdict.Warn = append(slices.Clip(a.Selection.Warnings), res.Verdict.Warn...)
		res.Selection = &injector.Selection{Name: name, Warnings: a.Selection.Warnings}
		if s.tags.Tags()[DefaultRevision] == name {
			res.Selection.Tag = DefaultRevision
		}
		return res, named(name, err)
	}
	res, err := inj.Validate(ctx, a)
	return res, named(a.Selection.Name, err)
}

// fallback names the revision of the default tag, else the default revision, else the first
// served.
func (s *Set) fallback() string {
	if name := s.tags.Tags()[DefaultRevision]; s.revisions[name] != nil {
		return name
	}
	if s.revisions[DefaultRevision] != nil {
		return DefaultRevision
	}
	return s.names[0]
}

// Trace writes the evaluation trace of the mutating decision on a to w, by the revision its labels
// choose.
func (s *Set) Trace(ctx context.Context, a injector.Admission, w io.Writer) error {
	a, inj, err := s.Select(ctx, a)
	if err != nil {
		return err
	}
	if inj == nil {
		return fmt.Errorf("no revision answers the pod: %s", strings.Join(a.Selection.Warnings, "; "))
	}
	return named(a.Selection.Name, inj.Trace(ctx, a, w))
}

// any is one of the revisions, for what every revision does alike: building an offline admission.
func (s *Set) any() *injector.Injector { return s.revisions[s.names[0]] }

// InjectObject is injector.Injector's InjectObject, by the revision the pod's labels choose.
func (s *Set) InjectObject(ctx context.Context, obj map[string]any, namespace string) (map[string]any, injector.Result, bool, error) {
	t, in, ok, err := s.any().ObjectAdmission(obj, namespace)
	if !ok || err != nil {
		return obj, injector.Result{}, ok, err
	}
	res, err := s.Inject(ctx, in)
	if err != nil || res.Pod == nil {
		return obj, res, true, err
	}
	return t.Apply(res.Pod), res, true, nil
}

// TraceObject is injector.Injector's TraceObject, by the revision the pod's labels choose.
func (s *Set) TraceObject(ctx context.Context, obj map[string]any, namespace string, w io.Writer) (bool, error) {
	_, in, ok, err := s.any().ObjectAdmission(obj, namespace)
	if !ok || err != nil {
		return ok, err
	}
	return true, s.Trace(ctx, in, w)
}

// ValidateObject is injector.Injector's ValidateObject, by the revision the pod's labels choose.
func (s *Set) ValidateObject(ctx context.Context, obj map[string]any, namespace string) (policy.Verdict, bool, error) {
	_, in, ok, err := s.any().ObjectAdmission(obj, namespace)
	if !ok || err != nil {
		return policy.Verdict{}, ok, err
	}
	res, err := s.Validate(ctx, in)
	return res.Verdict, true, err
}

// Decide runs only the mutating decision on a, by the revision its labels choose.
func (s *Set) Decide(ctx context.Context, a injector.Admission) (injector.Result, error) {
	a, inj, err := s.Select(ctx, a)
	if err != nil {
		return injector.Result{}, err
	}
	if inj == nil {
		return s.unanswered(a), nil
	}
	res, err := inj.Decide(ctx, a)
	return res, named(a.Selection.Name, err)
}

// unanswered is the result for a pod whose labels name no served revision.
func (s *Set) unanswered(a injector.Admission) injector.Result {
	return injector.Result{Selection: a.Selection, Decision: policy.Decision{
		Code: "unknown_revision", Reasons: a.Selection.Reasons, Warnings: a.Selection.Warnings,
	}}
}

// Revision is the bundle revision of the default tag's revision (see Validate): what a report
// that names one bundle revision names.
func (s *Set) Revision() string { return s.revisions[s.fallback()].Revision() }
