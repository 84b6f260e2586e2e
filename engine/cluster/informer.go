package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listersv1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// lookupTimeout bounds the GET made when a namespace is not in the cache yet.
const lookupTimeout = 2 * time.Second

// Live answers from an informer cache of the cluster's namespaces, falling back to a GET with a short
// timeout when a namespace is not cached yet (one created a moment before its first pod).
type Live struct {
	client kubernetes.Interface
	lister listersv1.NamespaceLister
	synced cache.InformerSynced
	log    *slog.Logger
}

// NewLive starts a namespace informer on client; it stops when ctx is done.
func NewLive(ctx context.Context, client kubernetes.Interface, log *slog.Logger) *Live {
	factory := informers.NewSharedInformerFactory(client, 10*time.Minute)
	inf := factory.Core().V1().Namespaces()
	l := &Live{client: client, lister: inf.Lister(), synced: inf.Informer().HasSynced, log: log}
	factory.Start(ctx.Done())
	go func() {
		if cache.WaitForCacheSync(ctx.Done(), l.synced) {
			log.Info("namespace cache synced")
		}
	}()
	return l
}

// Namespace implements Namespaces.
func (l *Live) Namespace(ctx context.Context, name string) (Namespace, error) {
	ns, err := l.lister.Get(name)
	if err != nil {
		ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
		defer cancel()
		ns, err = l.client.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return Namespace{}, fmt.Errorf("namespace %s: %w", name, err)
		}
		l.log.Debug("namespace not cached, read from the apiserver", "namespace", name)
	}
	return fromObject(ns), nil
}

// Synced implements Namespaces: true once the informer has listed every namespace.
func (l *Live) Synced() bool { return l.synced() }

func fromObject(ns *corev1.Namespace) Namespace {
	return Namespace{Name: ns.Name, Labels: copyOrEmpty(ns.Labels), Annotations: copyOrEmpty(ns.Annotations)}
}
