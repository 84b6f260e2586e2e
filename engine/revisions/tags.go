package revisions

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// LiveTags reads the tags from the ConfigMap TagsConfigMap through an informer: moving a tag
// takes effect on the next admission, without a restart. A missing ConfigMap is no tags.
type LiveTags struct {
	current atomic.Pointer[map[string]string]
	synced  cache.InformerSynced
}

// WatchTags starts an informer on the tags ConfigMap of namespace; it stops when ctx is done. It
// needs get, list and watch on that ConfigMap.
func WatchTags(ctx context.Context, client kubernetes.Interface, namespace string, log *slog.Logger) *LiveTags {
	factory := informers.NewSharedInformerFactoryWithOptions(client, 10*time.Minute,
		informers.WithNamespace(namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", TagsConfigMap).String()
		}))
	inf := factory.Core().V1().ConfigMaps().Informer()
	t := &LiveTags{synced: inf.HasSynced}
	empty := map[string]string{}
	t.current.Store(&empty)
	set := func(obj any) {
		cm, ok := obj.(*corev1.ConfigMap)
		if !ok {
			return
		}
		next := maps.Clone(cm.Data)
		if next == nil {
			next = map[string]string{}
		}
		if prev := *t.current.Swap(&next); !maps.Equal(prev, next) {
			log.Info("tags changed", "tags", next, "was", prev)
		}
	}
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    set,
		UpdateFunc: func(_, obj any) { set(obj) },
		DeleteFunc: func(any) {
			if prev := *t.current.Swap(&empty); len(prev) > 0 {
				log.Info("tags changed: the tags ConfigMap was deleted", "was", prev)
			}
		},
	})
	factory.Start(ctx.Done())
	return t
}

// Tags implements Tags.
func (t *LiveTags) Tags() map[string]string { return *t.current.Load() }

// Synced implements Tags: true once the informer has listed the ConfigMap (or its absence).
func (t *LiveTags) Synced() bool { return t.synced() }

// ReadTags reads the tags ConfigMap of namespace once, for the commands that run outside the
// server; a missing ConfigMap is no tags.
func ReadTags(ctx context.Context, client kubernetes.Interface, namespace string) (StaticTags, error) {
	cm, err := client.CoreV1().ConfigMaps(namespace).Get(ctx, TagsConfigMap, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return StaticTags{}, nil
	case err != nil:
		return nil, fmt.Errorf("read the tags: %w", err)
	}
	return StaticTags(maps.Clone(cm.Data)), nil
}
