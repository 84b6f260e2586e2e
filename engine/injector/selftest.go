package injector

import (
	"context"
	"fmt"
	"time"

	"github.com/rego-injector/rego-injector/engine/cluster"
)

// selfTestPod is a plain pod in a namespace labelled for injection by both labels the default
// policies know; variant, when set, is asked for with the default policies' variant annotation.
func selfTestPod(variant string) map[string]any {
	meta := map[string]any{"name": "self-test", "namespace": "self-test", "labels": map[string]any{"app": "self-test"}}
	if variant != "" {
		meta["annotations"] = map[string]any{"rego-injector.io/variant": variant}
	}
	return map[string]any{
		"apiVersion": "v1", "kind": "Pod", "metadata": meta,
		"spec": map[string]any{"containers": []any{map[string]any{
			"name": "app", "image": "example.com/app:1", "ports": []any{map[string]any{"containerPort": float64(8080)}}, // a JSON value, as decoded
		}}},
	}
}

// selfTestNamespace is where the self-test pods are created.
var selfTestNamespace = cluster.Namespace{
	Name:        "self-test",
	Labels:      map[string]string{"istio-injection": "enabled", "rego-injector.io/inject": "enabled"},
	Annotations: map[string]string{},
}

// selfTest runs a revision before it may serve. The decision on a plain pod must be well formed,
// and if it injects, its variant must render with the decision's values, merge, and give a patch.
// Then every variant the bundle declares must do the same: with the values policy gives a pod that
// asks for it (the variant annotation of the default policies), else, when policy does not pick
// it for that pod (a privileged variant, another annotation), with the plain pod's values. This
// refuses a bundle whose templates or values are broken before any pod meets them. It returns, per
// variant it could not render at all, why.
func (rev *revision) selfTest() (untested []string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	plain, err := rev.selfTestEvaluation("")
	if err != nil {
		return nil, err
	}
	res, err := rev.mutate(ctx, plain)
	if err != nil {
		return nil, fmt.Errorf("self-test on a plain pod: %w", err)
	}
	if res.Decision.Inject && res.Patch == nil {
		return nil, fmt.Errorf("self-test on a plain pod: variant %q injected nothing", res.Decision.Variant)
	}
	for _, variant := range rev.policy.Variants() {
		e, err := rev.selfTestEvaluation(variant)
		if err != nil {
			return nil, err
		}
		asked, err := rev.mutate(ctx, e)
		switch {
		case err != nil:
			return nil, fmt.Errorf("self-test of variant %q on a pod that asks for it: %w", variant, err)
		case asked.Decision.Inject && asked.Decision.Variant == variant:
		case res.Decision.Inject:
			// Policy does not give this pod the variant: render it with the plain pod's values.
			asked.Decision = res.Decision
			asked.Decision.Variant = variant
			if asked, err = rev.inject(e, asked); err != nil {
				return nil, fmt.Errorf("self-test of variant %q with the values of a plain pod: %w", variant, err)
			}
		default:
			untested = append(untested, fmt.Sprintf("variant %q: policy injects neither a plain pod nor one that asks for it, so there are no values to render it with", variant))
			continue
		}
		if asked.Patch == nil {
			return nil, fmt.Errorf("self-test of variant %q: it injected nothing", variant)
		}
	}
	return untested, nil
}

// selfTestEvaluation is the evaluation of the self-test pod asking for variant ("" for none).
func (rev *revision) selfTestEvaluation(variant string) (*evaluation, error) {
	pod := selfTestPod(variant)
	a, err := Offline(pod, selfTestNamespace.Name, nil)
	if err != nil {
		return nil, err
	}
	decoded, podValue, err := decodeObject(a.Raw)
	if err != nil {
		return nil, err
	}
	in, err := input(a.Request, podValue, nil, selfTestNamespace, nil, rev.policy.Revision(), "", nil)
	if err != nil {
		return nil, err
	}
	return &evaluation{rev: rev, request: a.Request, raw: a.Raw, pod: decoded, namespace: selfTestNamespace, input: in}, nil
}
