package registration

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/rego-injector/rego-injector/engine/revisions"
)

// Sentinel errors of the tag commands.
var (
	// ErrTagExists: the tag points at another revision, and overwriting was not asked for.
	ErrTagExists = errors.New("tag points at another revision")
	// ErrTagIsRevision: a revision of that name has its own configuration.
	ErrTagIsRevision = errors.New("a revision of that name has its own configuration")
	// ErrTagInUse: namespaces still choose the tag.
	ErrTagInUse = errors.New("namespaces still use the tag")
	// ErrTagNotFound: neither the ConfigMap nor a configuration knows the tag.
	ErrTagNotFound = errors.New("no such tag")
)

// Observe reads what Check needs: every MutatingWebhookConfiguration, every namespace, and the tags
// ConfigMap in injectorNamespace (absent: no tags).
func Observe(ctx context.Context, client kubernetes.Interface, injectorNamespace string) (State, error) {
	var s State
	configs, err := client.AdmissionregistrationV1().MutatingWebhookConfigurations().List(ctx, metav1.ListOptions{})
	if err != nil {
		return s, fmt.Errorf("list mutating webhook configurations: %w", err)
	}
	s.Configurations = configs.Items
	namespaces, err := client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return s, fmt.Errorf("list namespaces: %w", err)
	}
	s.Namespaces = namespaces.Items
	s.Tags, err = readTags(ctx, client, injectorNamespace)
	return s, err
}

// readTags returns the data of the tags ConfigMap, nil when it does not exist.
func readTags(ctx context.Context, client kubernetes.Interface, injectorNamespace string) (map[string]string, error) {
	cm, err := client.CoreV1().ConfigMaps(injectorNamespace).Get(ctx, revisions.TagsConfigMap, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read ConfigMap %s/%s: %w", injectorNamespace, revisions.TagsConfigMap, err)
	}
	if cm.Data == nil {
		return map[string]string{}, nil
	}
	return cm.Data, nil
}

// Apply creates cfg, or makes the configuration of that name hold cfg's webhooks, labels and
// annotations (others' labels and annotations are kept). It returns "created", "updated" or
// "unchanged".
func Apply(ctx context.Context, client kubernetes.Interface, cfg *admissionregistrationv1.MutatingWebhookConfiguration) (string, error) {
	configs := client.AdmissionregistrationV1().MutatingWebhookConfigurations()
	action := ""
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		existing, err := configs.Get(ctx, cfg.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			_, err = configs.Create(ctx, cfg, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				return apierrors.NewConflict(admissionregistrationv1.Resource("mutatingwebhookconfigurations"), cfg.Name, err)
			}
			action = "created"
			return err
		}
		if err != nil {
			return err
		}
		before := existing.DeepCopy()
		existing.Webhooks = cfg.Webhooks
		existing.Labels = merged(existing.Labels, cfg.Labels)
		existing.Annotations = merged(existing.Annotations, cfg.Annotations)
		if equality.Semantic.DeepEqual(before, existing) {
			action = "unchanged"
			return nil
		}
		_, err = configs.Update(ctx, existing, metav1.UpdateOptions{})
		action = "updated"
		return err
	})
	if err != nil {
		return "", fmt.Errorf("write MutatingWebhookConfiguration %s: %w", cfg.Name, err)
	}
	return action, nil
}

func merged(into, from map[string]string) map[string]string {
	if len(from) == 0 {
		return into
	}
	out := maps.Clone(into)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, from)
	return out
}

// TagOptions says which tag to point at which revision, and how the tag's configuration reaches the
// injector.
type TagOptions struct {
	Tag, Revision string
	// InjectorNamespace holds the tags ConfigMap, and is never sent to the injector.
	InjectorNamespace string
	// ClientConfig and Annotations go into the tag's configuration (Options).
	ClientConfig admissionregistrationv1.WebhookClientConfig
	Annotations  map[string]string
	// Overwrite lets a tag that points at another revision be pointed at this one.
	Overwrite bool
}

// TagResult tells what SetTag did.
type TagResult struct {
	// Previous is the revision the tag pointed at before, empty when it is new.
	Previous string
	// Configuration is the tag's configuration, and what Apply did to it.
	Configuration, Action string
}

// SetTag points a tag at a revision: data[tag]=revision in the tags ConfigMap (made when missing,
// labelled app.kubernetes.io/name=rego-injector), then the tag's configuration created or updated.
// The ConfigMap comes first so that the injector knows the tag before any pod naming it arrives.
// It refuses names that are not DNS labels, a tag named like a revision with its own configuration,
// and, unless o.Overwrite, a tag that points at another revision.
func SetTag(ctx context.Context, client kubernetes.Interface, o TagOptions) (TagResult, error) {
	var res TagResult
	if err := ValidateName(o.Tag); err != nil {
		return res, err
	}
	if err := ValidateName(o.Revision); err != nil {
		return res, err
	}
	cfg, err := Configuration(Tag, o.Tag, Options{ClientConfig: o.ClientConfig, InjectorNamespace: o.InjectorNamespace, Annotations: o.Annotations})
	if err != nil {
		return res, err
	}
	revs, err := client.AdmissionregistrationV1().MutatingWebhookConfigurations().List(ctx, metav1.ListOptions{LabelSelector: revisions.RevisionLabel + "=" + o.Tag})
	if err != nil {
		return res, fmt.Errorf("list revision configurations: %w", err)
	}
	if len(revs.Items) > 0 {
		return res, fmt.Errorf("tag %s: %w (%s)", o.Tag, ErrTagIsRevision, revs.Items[0].Name)
	}
	cms := client.CoreV1().ConfigMaps(o.InjectorNamespace)
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cm, err := cms.Get(ctx, revisions.TagsConfigMap, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			cm = TagsConfigMap(o.InjectorNamespace, map[string]string{o.Tag: o.Revision})
			_, err = cms.Create(ctx, cm, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				return apierrors.NewConflict(corev1.Resource("configmaps"), cm.Name, err)
			}
			return err
		}
		if err != nil {
			return err
		}
		res.Previous = cm.Data[o.Tag]
		if res.Previous == o.Revision {
			return nil
		}
		if res.Previous != "" && !o.Overwrite {
			return fmt.Errorf("tag %s: %w (%s), not %s: give --overwrite to move it", o.Tag, ErrTagExists, res.Previous, o.Revision)
		}
		if cm.Data == nil {
			cm.Data = map[string]string{}
		}
		cm.Data[o.Tag] = o.Revision
		_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		if errors.Is(err, ErrTagExists) {
			return res, err
		}
		return res, fmt.Errorf("write ConfigMap %s/%s: %w", o.InjectorNamespace, revisions.TagsConfigMap, err)
	}
	res.Configuration = cfg.Name
	res.Action, err = Apply(ctx, client, cfg)
	return res, err
}

// TagsConfigMap is the tags ConfigMap holding data, as SetTag makes it.
func TagsConfigMap(injectorNamespace string, data map[string]string) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: revisions.TagsConfigMap, Namespace: injectorNamespace, Labels: map[string]string{NameLabel: Name}},
		Data:       data,
	}
}

// TagInfo is one tag as ListTags finds it.
type TagInfo struct {
	Tag string `json:"tag"`
	// Revision is where the tags ConfigMap points the tag; empty when only a configuration names it.
	Revision string `json:"revision"`
	// Configuration is the tag's MutatingWebhookConfiguration, empty when it has none.
	Configuration string `json:"configuration"`
	// Namespaces are those whose rego-injector.io/rev or istio.io/rev names the tag.
	Namespaces []string `json:"namespaces"`
}

// ListTags returns the tags of the tags ConfigMap and of the tag configurations, sorted.
func ListTags(ctx context.Context, client kubernetes.Interface, injectorNamespace string) ([]TagInfo, error) {
	data, err := readTags(ctx, client, injectorNamespace)
	if err != nil {
		return nil, err
	}
	configs, err := client.AdmissionregistrationV1().MutatingWebhookConfigurations().List(ctx, metav1.ListOptions{LabelSelector: NameLabel + "=" + Name + "," + revisions.TagLabel})
	if err != nil {
		return nil, fmt.Errorf("list tag configurations: %w", err)
	}
	namespaces, err := client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list namespaces: %w", err)
	}
	tags := map[string]*TagInfo{}
	info := func(tag string) *TagInfo {
		if tags[tag] == nil {
			tags[tag] = &TagInfo{Tag: tag, Namespaces: []string{}}
		}
		return tags[tag]
	}
	for tag, rev := range data {
		info(tag).Revision = rev
	}
	for _, c := range configs.Items {
		info(c.Labels[revisions.TagLabel]).Configuration = c.Name
	}
	for _, t := range tags {
		t.Namespaces = usingTag(namespaces.Items, t.Tag)
	}
	var out []TagInfo
	for _, tag := range slices.Sorted(maps.Keys(tags)) {
		out = append(out, *tags[tag])
	}
	return out, nil
}

// usingTag returns, sorted, the namespaces whose revision labels name tag, either of them: a
// namespace that names it only in the label the other overrides is still counted, so that removing
// the tag never surprises it.
func usingTag(namespaces []corev1.Namespace, tag string) []string {
	out := []string{}
	for _, n := range namespaces {
		if n.Labels[revisions.RevLabel] == tag || n.Labels[revisions.IstioRevLabel] == tag {
			out = append(out, n.Name)
		}
	}
	slices.Sort(out)
	return out
}

// RemoveTag deletes the tag's configuration, then its key in the tags ConfigMap. Unless force, it
// refuses while namespaces still name the tag, returning them with ErrTagInUse.
func RemoveTag(ctx context.Context, client kubernetes.Interface, injectorNamespace, tag string, force bool) (inUse []string, err error) {
	if err := ValidateName(tag); err != nil {
		return nil, err
	}
	namespaces, err := client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list namespaces: %w", err)
	}
	inUse = usingTag(namespaces.Items, tag)
	if len(inUse) > 0 && !force {
		return inUse, fmt.Errorf("tag %s: %w: %v (give --force to remove it anyway)", tag, ErrTagInUse, inUse)
	}
	found := false
	name := ConfigurationName(Tag, tag)
	err = client.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(ctx, name, metav1.DeleteOptions{})
	switch {
	case err == nil:
		found = true
	case !apierrors.IsNotFound(err):
		return inUse, fmt.Errorf("delete MutatingWebhookConfiguration %s: %w", name, err)
	}
	cms := client.CoreV1().ConfigMaps(injectorNamespace)
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cm, err := cms.Get(ctx, revisions.TagsConfigMap, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		if _, ok := cm.Data[tag]; !ok {
			return nil
		}
		found = true
		delete(cm.Data, tag)
		_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return inUse, fmt.Errorf("write ConfigMap %s/%s: %w", injectorNamespace, revisions.TagsConfigMap, err)
	}
	if !found {
		return inUse, fmt.Errorf("tag %s: %w", tag, ErrTagNotFound)
	}
	return inUse, nil
}

// Routing returns, sorted, the names of the MutatingWebhookConfigurations of revisions and tags:
// labelled app.kubernetes.io/name=rego-injector and rego-injector.io/revision or rego-injector.io/tag.
// Whoever keeps the main configuration's caBundle keeps theirs too.
func Routing(ctx context.Context, client kubernetes.Interface) ([]string, error) {
	configs, err := client.AdmissionregistrationV1().MutatingWebhookConfigurations().List(ctx, metav1.ListOptions{LabelSelector: NameLabel + "=" + Name})
	if err != nil {
		return nil, fmt.Errorf("list webhook configurations of revisions and tags: %w", err)
	}
	var names []string
	for _, c := range configs.Items {
		_, tag := c.Labels[revisions.TagLabel]
		_, rev := c.Labels[revisions.RevisionLabel]
		if tag || rev {
			names = append(names, c.Name)
		}
	}
	slices.Sort(names)
	return names, nil
}
