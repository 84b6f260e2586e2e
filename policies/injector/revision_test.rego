# Tests for how the mutating decision reads the revision the engine chose (input.revision).
package injector.revision_test

import data.injector.mutate
import data.injector.mutate_test

chosen(namespace_labels, pod_labels, revision) := object.union(
	mutate_test.pod_input(namespace_labels, {"labels": pod_labels}, mutate_test.app),
	{"revision": revision},
)

canary_by_namespace := {"name": "1-32", "tag": "canary", "label": {"on": "namespace", "key": "istio.io/rev", "value": "canary"}}

test_namespace_revision_label_enables_injection if {
	d := mutate.decision with input as chosen({"istio.io/rev": "canary"}, {}, canary_by_namespace)
	d.inject
	d.reasons[0] == `namespace "team-a" label istio.io/rev="canary" selects revision 1-32 through tag canary`
	d.values.revisionName == "1-32"
}

test_pod_revision_label_enables_injection if {
	d := mutate.decision with input as chosen({}, {"rego-injector.io/rev": "1-32"}, {"name": "1-32", "tag": "", "label": {"on": "pod", "key": "rego-injector.io/rev", "value": "1-32"}})
	d.inject
	d.reasons[0] == `pod label rego-injector.io/rev="1-32" selects revision 1-32`
}

test_forced_revision_over_a_label_that_enables_injection if {
	d := mutate.decision with input as chosen({"istio.io/rev": "1-31"}, {}, {"name": "1-32", "tag": "", "forced": true, "label": {"on": "namespace", "key": "istio.io/rev", "value": "1-31"}})
	d.inject
	d.reasons[0] == `namespace "team-a" label istio.io/rev="1-31" enables injection; --revision chooses revision 1-32`
	d.values.revisionName == "1-32"
}

test_forced_revision_over_the_switch_label if {
	d := mutate.decision with input as chosen({"istio-injection": "enabled"}, {}, {"name": "canary", "tag": "", "forced": true})
	d.inject
	d.reasons[0] == `namespace "team-a" is labelled istio-injection=enabled; --revision chooses revision canary`
}

test_forced_revision_does_not_enable_injection if {
	d := mutate.decision with input as chosen({}, {}, {"name": "1-32", "tag": "", "forced": true})
	not d.inject
	d.code == "namespace_not_enabled"
}

test_bundle_revision_name_wins_over_the_served_name if {
	d := mutate.decision with input as chosen({"istio-injection": "enabled"}, {}, {"name": "canary", "tag": ""})
		with data.injector.values.revisionName as "1-20"
	d.values.revisionName == "1-20"
}

test_revision_name_without_a_revision if {
	d := mutate.decision with input as mutate_test.pod_input({"istio-injection": "enabled"}, {}, mutate_test.app)
	d.values.revisionName == "default"
}

test_opt_out_beats_the_revision_label if {
	d := mutate.decision with input as chosen({"istio.io/rev": "canary"}, {"sidecar.istio.io/inject": "false"}, canary_by_namespace)
	not d.inject
	d.code == "opted_out"
}

test_default_tag_without_a_label_is_not_enabled if {
	d := mutate.decision with input as chosen({}, {}, {"name": "default", "tag": ""})
	not d.inject
	d.code == "namespace_not_enabled"
}

test_switch_label_reason_and_revision_name if {
	d := mutate.decision with input as chosen({"istio-injection": "enabled"}, {}, {"name": "1-31", "tag": "default"})
	d.inject
	d.reasons[0] == `namespace "team-a" is labelled istio-injection=enabled`
	d.values.revisionName == "1-31"
}

test_disabled_switch_wins_over_a_revision_label if {
	d := mutate.decision with input as chosen({"istio-injection": "disabled"}, {}, {"name": "default", "tag": ""})
	not d.inject
	d.code == "namespace_disabled"
}

injected_by(rev) := {"rego-injector.io/status": json.marshal({"revision": "default-1", "rev": rev, "variant": "sidecar", "containers": ["istio-proxy"], "initContainers": ["istio-init"]})}

test_same_bundle_from_another_revision_is_reinjected if {
	pod := object.union(
		mutate_test.pod_input({"istio-injection": "enabled"}, {"annotations": injected_by("1-31")}, mutate_test.app),
		{"revision": {"name": "1-32", "tag": "default"}},
	)
	d := mutate.decision with input as pod
	d.inject
	`re-injecting: pod was injected by revision 1-31 (bundle revision "default-1"), it is now answered by revision 1-32` in d.reasons
}

test_same_bundle_and_revision_is_skipped if {
	pod := object.union(
		mutate_test.pod_input({"istio-injection": "enabled"}, {"annotations": injected_by("1-32")}, mutate_test.app),
		{"revision": {"name": "1-32", "tag": "default"}},
	)
	d := mutate.decision with input as pod
	d.code == "already_injected"
}

test_status_without_a_revision_name_is_the_default_revision if {
	d := mutate.decision with input as mutate_test.pod_input({"istio-injection": "enabled"}, {"annotations": injected_by(null)}, mutate_test.app)
	d.code == "already_injected"
}
