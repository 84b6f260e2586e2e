package injector

import (
	"context"
	"fmt"
	"time"

	"github.com/rego-injector/rego-injector/engine/cluster"
)

// selfTestPod is a plain pod in a namespace labelled for injection by both labels the default
// policies know.
var selfTestPod = []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"self-test","namespace":"self-test","labels":{"app":"self-test"}},` +
	`"spec":{"containers":[{"name":"app","image":"example.com/app:1","ports":[{"containerPort":8080}]}]}}`)

// selfTest runs a revision on a plain pod before it may serve: the decision must be well formed,
// and if it injects, the chosen variant must render with the decision's values, merge, and give a
// patch. This refuses a bundle whose templates or values are broken before any pod meets them.
func (rev *revision) selfTest() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ns := cluster.Namespace{Name: "self-test", Labels: map[string]string{"istio-injection": "enabled", "rego-injector.io/inject": "enabled"}, Annotations: map[string]string{}}
	pod, err := decodeObject(selfTestPod)
	if err != nil {
		return err
	}
	plain, err := Offline(pod, ns.Name, nil)
	if err != nil {
		return err
	}
	in, err := input(plain.Request, pod, nil, ns, nil, rev.policy.Revision(), "")
	if err != nil {
		return err
	}
	res, err := rev.mutate(ctx, &evaluation{rev: rev, request: plain.Request, raw: plain.Raw, pod: pod, namespace: ns, input: in})
	if err != nil {
		return fmt.Errorf("self-test on a plain pod: %w", err)
	}
	if res.Decision.Inject && res.Patch == nil {
		return fmt.Errorf("self-test on a plain pod: variant %q injected nothing", res.Decision.Variant)
	}
	return nil
}
