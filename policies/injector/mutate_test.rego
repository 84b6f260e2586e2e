# Tests for the mutating decision, against the shipped config and values unless a test says otherwise.
package injector.mutate_test

import data.injector.mutate
import data.injector.overrides

enabled := {"istio-injection": "enabled"}

app := {"containers": [{"name": "app", "image": "example.com/team-a/web:1.4"}]}

# A pod being created in namespace team-a with the given namespace labels, pod metadata and spec.
pod_input(namespace_labels, metadata, spec) := {
	"request": {
		"uid": "0b1c",
		"kind": {"group": "", "version": "v1", "kind": "Pod"},
		"namespace": "team-a",
		"operation": "CREATE",
		"userInfo": {"username": "alice", "groups": ["dev"]},
		"dryRun": false,
	},
	"object": {
		"apiVersion": "v1",
		"kind": "Pod",
		"metadata": object.union({"name": "web-1", "namespace": "team-a"}, metadata),
		"spec": spec,
	},
	"namespace": {"name": "team-a", "labels": namespace_labels},
	"injector": {"revision": "default-1", "namespace": "rego-injector-system"},
}

# An app pod in an enabled namespace, with the given labels and annotations.
labelled(labels, annotations) := pod_input(enabled, {"labels": labels, "annotations": annotations}, app)

# Same, in a namespace with the given labels.
in_namespace(namespace_labels) := pod_input(namespace_labels, {}, app)

skipped(reasons, warnings) := {
	"inject": false,
	"variant": "",
	"values": {},
	"reasons": reasons,
	"warnings": warnings,
}

# The values of an injected pod that asks for nothing: the bundle's, the proxy a native sidecar.
default_values := object.union(data.injector.values, {"proxy": {"native": true}, "revisionName": "default"})

native_by_default := "config native_sidecars is true: istio-proxy runs as a native sidecar (an init container with restartPolicy: Always)"

injected_by_default := {
	"inject": true,
	"variant": "sidecar",
	"values": default_values,
	"reasons": [
		`namespace "team-a" is labelled istio-injection=enabled`,
		"the global injection policy is enabled: pods in enabled namespaces are injected unless they opt out",
		"no variant requested and no image rule matched: default variant sidecar",
		native_by_default,
	],
	"warnings": [],
	"refused_overrides": [],
	"honoured_overrides": [],
}

# --- 1. operation ------------------------------------------------------------------------------------

test_update_is_skipped if {
	pod := json.patch(labelled({"sidecar.istio.io/inject": "true"}, {}), [
		{"op": "replace", "path": "/request/operation", "value": "UPDATE"},
		{"op": "add", "path": "/oldObject", "value": {"kind": "Pod"}},
	])
	object.remove(mutate.decision, {"code"}) == skipped(["operation UPDATE: pods are injected on CREATE only"], []) with input as pod
}

test_missing_operation_is_skipped if {
	pod := json.remove(in_namespace(enabled), ["/request/operation"])
	object.remove(mutate.decision, {"code"}) == skipped(["the request names no operation: pods are injected on CREATE only"], []) with input as pod
}

# --- 2. excluded namespaces --------------------------------------------------------------------------

on_namespace(name, pod) := json.patch(pod, [
	{"op": "replace", "path": "/namespace/name", "value": name},
	{"op": "replace", "path": "/request/namespace", "value": name},
])

test_excluded_namespace_is_skipped_even_when_the_pod_opts_in if {
	every name in ["kube-system", "kube-public", "kube-node-lease"] {
		object.remove(mutate.decision, {"code"}) == skipped([sprintf("namespace %q is excluded from injection", [name])], []) with input as on_namespace(name, labelled({"sidecar.istio.io/inject": "true"}, {}))
	}
}

test_excluded_namespaces_follow_the_config if {
	object.remove(mutate.decision, {"code"}) == skipped([`namespace "team-a" is excluded from injection`], []) with input as in_namespace(enabled)
		with data.injector.config.excluded_namespaces as ["team-a"]
}

test_injector_namespace_is_skipped if {
	pod := on_namespace("rego-injector-system", labelled({"sidecar.istio.io/inject": "true"}, {}))
	object.remove(mutate.decision, {"code"}) == skipped([`namespace "rego-injector-system" is the injector's own namespace and is excluded from injection`], []) with input as pod
}

test_unknown_injector_namespace_excludes_nothing if {
	pod := json.patch(labelled({"sidecar.istio.io/inject": "true"}, {}), [
		{"op": "remove", "path": "/namespace"},
		{"op": "remove", "path": "/request/namespace"},
		{"op": "remove", "path": "/object/metadata/namespace"},
		{"op": "replace", "path": "/injector/namespace", "value": ""},
	])
	decision := mutate.decision with input as pod
	decision.inject == true
	decision.reasons[0] == `pod label sidecar.istio.io/inject="true" opts the pod in`
}

# --- 3. and 8. namespace labels ----------------------------------------------------------------------

test_namespace_istio_injection_enabled if {
	object.remove(mutate.decision, {"code"}) == injected_by_default with input as in_namespace(enabled)
}

test_namespace_rego_injector_enabled if {
	decision := mutate.decision with input as in_namespace({"rego-injector.io/inject": "enabled"})
	decision.inject == true
	decision.variant == "sidecar"
	decision.reasons[0] == `namespace "team-a" is labelled rego-injector.io/inject=enabled`
	decision.warnings == []
}

test_namespace_istio_injection_disabled if {
	pod := pod_input({"istio-injection": "disabled"}, {"labels": {"sidecar.istio.io/inject": "true"}}, app)
	object.remove(mutate.decision, {"code"}) == skipped([`namespace "team-a" is labelled istio-injection=disabled`], []) with input as pod
}

test_namespace_rego_injector_disabled if {
	object.remove(mutate.decision, {"code"}) == skipped([`namespace "team-a" is labelled rego-injector.io/inject=disabled`], []) with input as in_namespace({"rego-injector.io/inject": "disabled"})
}

test_namespace_first_label_decides if {
	enabled_first := {"istio-injection": "enabled", "rego-injector.io/inject": "disabled"}
	decision := mutate.decision with input as in_namespace(enabled_first)
	decision.inject == true
	decision.reasons[0] == `namespace "team-a" is labelled istio-injection=enabled`

	disabled_first := {"istio-injection": "disabled", "rego-injector.io/inject": "enabled"}
	object.remove(mutate.decision, {"code"}) == skipped([`namespace "team-a" is labelled istio-injection=disabled`], []) with input as in_namespace(disabled_first)
}

test_namespace_without_label_is_skipped if {
	object.remove(mutate.decision, {"code"}) == skipped(
		[`namespace "team-a" is not labelled istio-injection=enabled or rego-injector.io/inject=enabled`],
		[],
	) with input as in_namespace({"team": "a"})
}

test_namespace_with_other_value_is_skipped if {
	object.remove(mutate.decision, {"code"}) == skipped(
		[`namespace "team-a" is not labelled istio-injection=enabled or rego-injector.io/inject=enabled (its label istio-injection="true" neither enables nor disables injection)`],
		[],
	) with input as in_namespace({"istio-injection": "true", "rego-injector.io/inject": "enabled"})
}

test_namespace_labels_null_or_absent if {
	mutate.decision.reasons == [`namespace "team-a" is not labelled istio-injection=enabled or rego-injector.io/inject=enabled`] with input as in_namespace(null)
	pod := json.remove(in_namespace(enabled), ["/namespace/labels"])
	mutate.decision.inject == false with input as pod
}

test_no_namespace_labels_configured if {
	object.remove(mutate.decision, {"code"}) == skipped(
		[`namespace "team-a" is not labelled with an injection label (config namespace_labels lists none)`],
		[],
	) with input as in_namespace(enabled)
		with data.injector.config.namespace_labels as []
}

# --- 4. hostNetwork ----------------------------------------------------------------------------------

test_host_network_is_skipped if {
	pod := pod_input(enabled, {"labels": {"sidecar.istio.io/inject": "true"}}, object.union(app, {"hostNetwork": true}))
	object.remove(mutate.decision, {"code"}) == skipped(["pod uses hostNetwork: its traffic cannot be redirected through a sidecar"], []) with input as pod
}

test_host_network_false_is_injected if {
	object.remove(mutate.decision, {"code"}) == injected_by_default with input as pod_input(enabled, {}, object.union(app, {"hostNetwork": false}))
}

# --- 5. and 6. injection status ----------------------------------------------------------------------

status(revision) := json.marshal({"revision": revision, "variant": "sidecar", "containers": ["istio-proxy"], "initContainers": ["istio-init"]})

test_same_revision_is_skipped if {
	object.remove(mutate.decision, {"code"}) == skipped([`pod is already injected at revision "default-1"`], []) with input as labelled({}, {"rego-injector.io/status": status("default-1")})
}

test_other_revision_is_reinjected if {
	decision := mutate.decision with input as labelled({}, {"rego-injector.io/status": status("default-0")})
	decision.inject == true
	decision.variant == "sidecar"
	decision.values == default_values
	decision.reasons == [
		`namespace "team-a" is labelled istio-injection=enabled`,
		"the global injection policy is enabled: pods in enabled namespaces are injected unless they opt out",
		`re-injecting: pod was injected at revision "default-0", bundle is now "default-1"`,
		"no variant requested and no image rule matched: default variant sidecar",
		native_by_default,
	]
	decision.warnings == []
}

test_other_revision_no_longer_selected_warns if {
	pod := labelled({"sidecar.istio.io/inject": "false"}, {"rego-injector.io/status": status("default-0")})
	object.remove(mutate.decision, {"code"}) == skipped(
		[`pod label sidecar.istio.io/inject="false" opts the pod out`],
		[`pod carries containers injected at revision "default-0" but is no longer selected for injection: they are left as they are`],
	) with input as pod
}

test_unreadable_status_is_skipped if {
	reason := "pod annotation rego-injector.io/status is not the status this injector writes (a JSON object with a revision, and lists of names): the injected containers cannot be safely stripped and re-injected, so the pod is left as it is"
	every raw in [`{"revision": "default-1"`, "{}", "not json", `["default-1"]`] {
		object.remove(mutate.decision, {"code"}) == skipped([reason], []) with input as labelled({}, {"rego-injector.io/status": raw})
	}
}

test_istio_injected_is_skipped if {
	pod := labelled({"sidecar.istio.io/inject": "true"}, {"sidecar.istio.io/status": `{"containers":["istio-proxy"]}`})
	object.remove(mutate.decision, {"code"}) == skipped(["pod is already injected by Istio (it has annotation sidecar.istio.io/status)"], []) with input as pod
}

test_our_status_is_checked_before_istio_status if {
	pod := labelled({}, {
		"sidecar.istio.io/status": "{}",
		"rego-injector.io/status": status("default-1"),
	})
	mutate.decision.reasons == [`pod is already injected at revision "default-1"`] with input as pod
}

# The default templates write Istio's status beside ours, for the tools that read it: such a pod
# is ours, re-injected when its revision is older.
test_istio_status_beside_ours_is_ours if {
	pod := labelled({}, {
		"sidecar.istio.io/status": "{}",
		"rego-injector.io/status": status("default-0"),
	})
	mutate.decision.inject with input as pod
}

# Without the engine's revision selection (input.revision), Istio's revision label is not read, and the reason says so.
test_istio_revision_label_is_named if {
	d := mutate.decision with input as in_namespace({"istio.io/rev": "1-28"})
	d.reasons == [`namespace "team-a" is not labelled istio-injection=enabled or rego-injector.io/inject=enabled (its label istio.io/rev="1-28" names a revision, but no revision selection reached this policy: input.revision is absent)`]
}

# --- init containers before the proxy ----------------------------------------------------------------

init_pod(annotations) := pod_input(enabled, {"annotations": annotations}, {
	"initContainers": [{"name": "migrate", "image": "m"}, {"name": "certs", "image": "c"}, {"name": "istio-proxy", "image": "auto"}],
	"containers": [{"name": "app", "image": "example.com/team-a/web:1.4"}],
})

test_init_containers_before_proxy_from_config_and_annotation if {
	d := mutate.decision with input as init_pod({"sidecar.istio.io/init-containers-before-proxy": " certs,migrate, certs,gone, istio-proxy"})
		with data.injector.config.init_containers_before_proxy as "migrate"
	d.values.init.containersBeforeProxy == ["migrate", "certs"]
	"init containers migrate, certs run before istio-proxy (config init_containers_before_proxy and pod annotation sidecar.istio.io/init-containers-before-proxy)" in d.reasons
	d.warnings == [
		`pod annotation sidecar.istio.io/init-containers-before-proxy names init container "gone", which the pod does not have: ignored`,
		`pod annotation sidecar.istio.io/init-containers-before-proxy names init container "istio-proxy", which the pod does not have: ignored`,
	]
}

test_init_containers_before_proxy_need_a_native_sidecar if {
	d := mutate.decision with input as pod_input(enabled, {"annotations": {"sidecar.istio.io/init-containers-before-proxy": "certs"}}, {
		"initContainers": [{"name": "certs", "image": "c"}],
		"containers": [{"name": "app", "image": "example.com/team-a/web:1.4"}],
	})
		with data.injector.config.native_sidecars as false
	d.values.init.containersBeforeProxy == []
	d.warnings == ["pod annotation sidecar.istio.io/init-containers-before-proxy has no effect: istio-proxy is not a native sidecar, so no init container runs after it"]
	plain := mutate.decision with input as labelled({}, {})
	plain.values.init.containersBeforeProxy == []
	plain.warnings == []
}

# --- settings templates turn off ---------------------------------------------------------------------

test_proxyless_grpc_templates_turn_settings_off if {
	agent := mutate.decision with input as labelled({}, {"inject.istio.io/templates": "grpc-agent", "sidecar.istio.io/rewriteAppHTTPProbers": "true"})
	agent.values.probes.rewrite == false
	agent.values.prometheus.merge == true
	"template grpc-agent turns probe rewriting off (config template_settings)" in agent.reasons
	simple := mutate.decision with input as labelled({}, {"inject.istio.io/templates": "grpc-simple"})
	simple.values.probes.rewrite == false
	simple.values.prometheus.merge == false
	[r | some r in simple.reasons; contains(r, "template grpc-simple")] == [
		"template grpc-simple turns metrics merging off (config template_settings)",
		"template grpc-simple turns probe rewriting off (config template_settings)",
	]
	mixed := mutate.decision with input as labelled({}, {"inject.istio.io/templates": "sidecar"})
		with data.injector.config.template_settings as {"sidecar": {"rewrite_probes": "no"}}
	mixed.values.probes.rewrite == true
}

# --- 7. the pod's own choice -------------------------------------------------------------------------

test_label_opts_out if {
	object.remove(mutate.decision, {"code"}) == skipped([`pod label sidecar.istio.io/inject="false" opts the pod out`], []) with input as labelled({"sidecar.istio.io/inject": "false"}, {})
}

test_annotation_opts_out if {
	object.remove(mutate.decision, {"code"}) == skipped([`pod annotation sidecar.istio.io/inject="false" opts the pod out`], []) with input as labelled({}, {"sidecar.istio.io/inject": "false"})
}

test_second_key_opts_out if {
	object.remove(mutate.decision, {"code"}) == skipped([`pod label rego-injector.io/inject="false" opts the pod out`], []) with input as labelled({"rego-injector.io/inject": "false"}, {})
}

test_label_opts_in_without_namespace_label if {
	pod := pod_input({}, {"labels": {"sidecar.istio.io/inject": "true"}}, app)
	object.remove(mutate.decision, {"code"}) == {
		"inject": true,
		"variant": "sidecar",
		"values": default_values,
		"reasons": [
			`pod label sidecar.istio.io/inject="true" opts the pod in`,
			"no variant requested and no image rule matched: default variant sidecar",
			native_by_default,
		],
		"warnings": [],
		"refused_overrides": [],
		"honoured_overrides": [],
	} with input as pod
}

test_annotation_opts_in_without_namespace_label if {
	pod := pod_input({}, {"annotations": {"rego-injector.io/inject": "true"}}, app)
	decision := mutate.decision with input as pod
	decision.inject == true
	decision.reasons[0] == `pod annotation rego-injector.io/inject="true" opts the pod in`
}

test_label_beats_annotation if {
	out := labelled({"sidecar.istio.io/inject": "false"}, {"sidecar.istio.io/inject": "true"})
	object.remove(mutate.decision, {"code"}) == skipped(
		[`pod label sidecar.istio.io/inject="false" opts the pod out`],
		[`pod annotation sidecar.istio.io/inject="true" is overridden by pod label sidecar.istio.io/inject="false"`],
	) with input as out

	in_mesh := pod_input({}, {"labels": {"sidecar.istio.io/inject": "true"}, "annotations": {"sidecar.istio.io/inject": "false"}}, app)
	decision := mutate.decision with input as in_mesh
	decision.inject == true
	decision.reasons[0] == `pod label sidecar.istio.io/inject="true" opts the pod in`
	decision.warnings == [`pod annotation sidecar.istio.io/inject="false" is overridden by pod label sidecar.istio.io/inject="true"`]
}

test_invalid_value_falls_back_to_the_default if {
	every value in ["maybe", "yes", "y", "no", "n", "True", ""] {
		decision := mutate.decision with input as labelled({"sidecar.istio.io/inject": value}, {})
		decision.inject == true
		decision.variant == "sidecar"
		decision.reasons == injected_by_default.reasons
		decision.warnings == [sprintf(`pod label sidecar.istio.io/inject has invalid value %q; expected "true" or "false"; using the default`, [value])]
	}
}

test_invalid_value_in_unlabelled_namespace_is_skipped_with_warning if {
	pod := pod_input({}, {"annotations": {"sidecar.istio.io/inject": "maybe"}}, app)
	object.remove(mutate.decision, {"code"}) == skipped(
		[`namespace "team-a" is not labelled istio-injection=enabled or rego-injector.io/inject=enabled`],
		[`pod annotation sidecar.istio.io/inject has invalid value "maybe"; expected "true" or "false"; using the default`],
	) with input as pod
}

test_invalid_label_lets_a_valid_annotation_decide if {
	object.remove(mutate.decision, {"code"}) == skipped(
		[`pod annotation sidecar.istio.io/inject="false" opts the pod out`],
		[`pod label sidecar.istio.io/inject has invalid value "no"; expected "true" or "false"; using pod annotation sidecar.istio.io/inject="false" instead`],
	) with input as labelled({"sidecar.istio.io/inject": "no"}, {"sidecar.istio.io/inject": "false"})
}

# --- 8. selectors and the global policy --------------------------------------------------------------

gateway := {"rego-injector.io/role": "mesh-gateway"}

test_never_inject_selector_skips if {
	object.remove(mutate.decision, {"code"}) == skipped(
		[
			`namespace "team-a" is labelled istio-injection=enabled`,
			"pod labels match never_inject_selectors[0] (rego-injector.io/role in (mesh-gateway))",
		],
		[],
	) with input as labelled(gateway, {})
}

test_opt_in_beats_never_inject_selector if {
	decision := mutate.decision with input as labelled(object.union(gateway, {"sidecar.istio.io/inject": "true"}), {})
	decision.inject == true
	decision.reasons[0] == `pod label sidecar.istio.io/inject="true" opts the pod in`
}

test_never_inject_beats_always_inject if {
	decision := mutate.decision with input as labelled(gateway, {})
		with data.injector.config.always_inject_selectors as [{}]
	decision.inject == false
	decision.reasons[1] == "pod labels match never_inject_selectors[0] (rego-injector.io/role in (mesh-gateway))"
}

test_never_inject_selector_needs_an_enabled_namespace if {
	mutate.decision.reasons == [`namespace "team-a" is not labelled istio-injection=enabled or rego-injector.io/inject=enabled`] with input as pod_input({}, {"labels": gateway}, app)
}

test_always_inject_selector_beats_disabled_policy if {
	pod := labelled({"app": "payments", "tier": "backend"}, {})
	decision := mutate.decision with input as pod
		with data.injector.config.policy as "disabled"
		with data.injector.config.always_inject_selectors as [
			{"matchLabels": {"app": "web"}},
			{"matchLabels": {"app": "payments"}, "matchExpressions": [{"key": "canary", "operator": "DoesNotExist"}]},
		]
	decision.inject == true
	decision.variant == "sidecar"
	decision.reasons[0] == `namespace "team-a" is labelled istio-injection=enabled`
	decision.reasons[1] == "pod labels match always_inject_selectors[1] (app=payments,!canary)"
}

test_disabled_policy_skips if {
	object.remove(mutate.decision, {"code"}) == skipped(
		[
			`namespace "team-a" is labelled istio-injection=enabled`,
			`the global injection policy is disabled: pods in namespace "team-a" are injected only when they opt in with label sidecar.istio.io/inject="true"`,
		],
		[],
	) with input as in_namespace(enabled)
		with data.injector.config.policy as "disabled"
}

test_disabled_policy_still_injects_pods_that_opt_in if {
	decision := mutate.decision with input as labelled({"sidecar.istio.io/inject": "true"}, {})
		with data.injector.config.policy as "disabled"
	decision.inject == true
	decision.reasons[0] == `pod label sidecar.istio.io/inject="true" opts the pod in`
}

test_unknown_policy_is_treated_as_disabled if {
	decision := mutate.decision with input as in_namespace(enabled)
		with data.injector.config.policy as "Enabled"
	decision.inject == false
	decision.reasons[1] == `the global injection policy has unknown value "Enabled" and is treated as disabled: pods in namespace "team-a" are injected only when they opt in with label sidecar.istio.io/inject="true"`
}

test_disabled_policy_without_pod_keys if {
	decision := mutate.decision with input as in_namespace(enabled)
		with data.injector.config.policy as "disabled"
		with data.injector.config.pod_keys as []
	decision.reasons[1] == `the global injection policy is disabled: pods in namespace "team-a" are injected only when they opt in with an opt-in label (config pod_keys lists none)`
}

# --- variants ----------------------------------------------------------------------------------------

variant_of(pod) := {"variant": decision.variant, "reason": reason, "warnings": decision.warnings} if {
	decision := mutate.decision with input as pod
	decision.inject == true
	reason := mutate.variant.reason with input as pod
}

placement_of(pod) := placement if {
	placement := mutate.placement with input as pod
}

with_owner(pod, owner) := object.union(pod, {"owner": owner})

with_images(images) := pod_input(enabled, {}, {"containers": [{"name": sprintf("c%d", [i]), "image": image} | some i, image in images]})

test_variant_by_annotation if {
	variant_of(labelled({}, {"rego-injector.io/variant": "native"})) == {
		"variant": "native",
		"reason": `pod annotation rego-injector.io/variant="native" asks for variant native`,
		"warnings": [],
	}
	variant_of(labelled({}, {"inject.istio.io/templates": "proxy-only"})).variant == "proxy-only"
}

test_variant_first_annotation_wins if {
	pod := labelled({}, {"rego-injector.io/variant": "sidecar", "inject.istio.io/templates": "native"})
	variant_of(pod).variant == "sidecar"
}

test_variant_annotation_beats_owner_and_image if {
	pod := with_owner(
		pod_input(enabled, {"annotations": {"rego-injector.io/variant": "sidecar"}}, {"containers": [{"name": "db", "image": "redis:7"}]}),
		{"apiVersion": "batch/v1", "kind": "Job", "name": "migrate"},
	)
	variant_of(pod).variant == "sidecar"
}

test_variant_refused_annotation_warns_and_falls_through if {
	variant_of(labelled({}, {"rego-injector.io/variant": "gateway"})) == {
		"variant": "sidecar",
		"reason": "no variant requested and no image rule matched: default variant sidecar",
		"warnings": [`pod annotation rego-injector.io/variant="gateway" asks for a variant pods may not request (allowed: native, proxy-only, sidecar); ignoring it`],
	} with data.injector.config.requestable_variants as ["native", "proxy-only", "sidecar"]
}

test_variant_refused_annotation_does_not_warn_when_not_injecting if {
	pod := labelled({"sidecar.istio.io/inject": "false"}, {"rego-injector.io/variant": "gateway"})
	mutate.decision.warnings == [] with input as pod
}

test_jobs_get_a_native_sidecar_whatever_the_bundle_says if {
	for_job := with_owner(in_namespace(enabled), {"apiVersion": "batch/v1", "kind": "Job", "name": "migrate"})
	placement_of(for_job) == {"native": true, "reason": "owner Job/migrate runs to completion: istio-proxy runs as a native sidecar"} with data.injector.config.native_sidecars as false
	placement_of(with_owner(in_namespace(enabled), {"kind": "CronJob", "name": "nightly"})).native == true with data.injector.config.native_sidecars as false
	variant_of(for_job).variant == "sidecar"
	from_reference := pod_input(enabled, {"ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "migrate-x7", "controller": true}]}, app)
	placement_of(from_reference).reason == "owner Job/migrate-x7 runs to completion: istio-proxy runs as a native sidecar" with data.injector.config.native_sidecars as false
}

test_native_sidecars_by_default if {
	placement_of(in_namespace(enabled)) == {"native": true, "reason": native_by_default}
	d := mutate.decision with input as in_namespace(enabled)
	d.values.proxy.native == true
	d.reasons[count(d.reasons) - 1] == native_by_default
}

test_native_sidecars_off_in_the_bundle if {
	placement_of(in_namespace(enabled)) == {"native": false, "reason": "config native_sidecars is false: istio-proxy runs as an ordinary container"} with data.injector.config.native_sidecars as false
	placement_of(with_owner(in_namespace(enabled), {"kind": "Deployment", "name": "web"})).native == false with data.injector.config.native_sidecars as false

	# a mistyped setting is the default
	placement_of(in_namespace(enabled)).native == true with data.injector.config.native_sidecars as "false"
}

test_native_sidecar_annotation_as_istio_reads_it if {
	placement_of(labelled({}, {"sidecar.istio.io/nativeSidecar": "false"})) == {"native": false, "reason": `pod annotation sidecar.istio.io/nativeSidecar="false": istio-proxy runs as an ordinary container`}
	job := with_owner(labelled({}, {"sidecar.istio.io/nativeSidecar": "false"}), {"kind": "Job", "name": "migrate"})
	placement_of(job).native == false
	every value in ["true", "False", "yes"] {
		placement_of(labelled({}, {"sidecar.istio.io/nativeSidecar": value})) == {"native": true, "reason": sprintf("pod annotation sidecar.istio.io/nativeSidecar=%q: istio-proxy runs as a native sidecar", [value])} with data.injector.config.native_sidecars as false
	}

	# empty, or not a string: the defaults decide
	placement_of(labelled({}, {"sidecar.istio.io/nativeSidecar": ""})).native == false with data.injector.config.native_sidecars as false
	placement_of(labelled({}, {"sidecar.istio.io/nativeSidecar": false})).reason == native_by_default
}

test_owner_does_not_choose_the_variant if {
	pod := with_owner(with_images(["redis:7"]), {"kind": "Job", "name": "warm-cache"})
	variant_of(pod).variant == "proxy-only"
	placement_of(pod).native == true
}

test_variant_long_running_owner_is_not_native if {
	variant_of(with_owner(in_namespace(enabled), {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"})).variant == "sidecar"
}

test_variant_by_image if {
	variant_of(with_images(["example.com/web:1", "docker.io/library/redis:7"])) == {
		"variant": "proxy-only",
		"reason": `container "c1" image "docker.io/library/redis:7" matches "*/redis:*": variant proxy-only`,
		"warnings": [],
	}
	variant_of(with_images(["redis"])).reason == `container "c0" image "redis" matches "redis": variant proxy-only`
	variant_of(with_images(["redis:7.2.4-alpine"])).reason == `container "c0" image "redis:7.2.4-alpine" matches "redis:*": variant proxy-only`
	variant_of(with_images(["registry.example.com:5000/mirror/library/postgres:16.1"])).reason == `container "c0" image "registry.example.com:5000/mirror/library/postgres:16.1" matches "*/postgres:*": variant proxy-only`
	variant_of(with_images(["mysql:8.0"])).variant == "proxy-only"
	variant_of(with_images(["quay.io/org/redis"])).variant == "proxy-only"
}

test_variant_non_matching_images if {
	every image in ["example.com/redis-exporter:1.5", "myredis:7", "example.com/postgresql:16", "redis-stack:7", "docker.io/library/redis@sha256:0123abcd"] {
		variant_of(with_images([image])).variant == "sidecar"
	}
}

test_variant_image_rules_in_config_order if {
	rules := [
		{"variant": "native", "images": ["*/batch-*"]},
		{"variant": "proxy-only", "images": ["*"]},
	]
	variant_of(with_images(["example.com/web:1", "example.com/batch-runner:2"])).reason == `container "c1" image "example.com/batch-runner:2" matches "*/batch-*": variant native` with data.injector.config.image_variants as rules
}

test_variant_image_patterns_match_one_by_one if {
	# The alternatives of a rule only decide which rules to try: a pattern with a comma means that
	# comma, and the first pattern in order names the match.
	rules := [{"variant": "native", "images": ["x,y:*", "*/job:*", "*/*:*"]}]
	variant_of(with_images(["x,y:1"])).reason == `container "c0" image "x,y:1" matches "x,y:*": variant native` with data.injector.config.image_variants as rules
	variant_of(with_images(["x"])).variant == "sidecar" with data.injector.config.image_variants as rules
	variant_of(with_images(["example.com/web:1", "example.com/job:2"])).reason == `container "c1" image "example.com/job:2" matches "*/job:*": variant native` with data.injector.config.image_variants as rules
	variant_of(with_images(["sidecar"])).variant == "sidecar" with data.injector.config.image_variants as [{"variant": "native", "images": [7]}]
}

test_variant_ignores_init_containers_and_malformed_images if {
	pod := pod_input(enabled, {}, {
		"initContainers": [{"name": "seed", "image": "redis:7"}],
		"containers": [{"name": "app", "image": 7}, {"name": "noimage"}],
	})
	variant_of(pod).variant == "sidecar"
}

test_glob_delimiters if {
	# OPA's glob.match treats [] as the default delimiter ["."]: `*` would stop at the dots of a
	# registry host or version tag. The policy passes null, so `*` matches any characters.
	not glob.match("*/redis:*", [], "docker.io/library/redis:7")
	not glob.match("redis:*", [], "redis:7.2")
	not glob.match("*/redis:*", ["/"], "docker.io/library/redis:7")
	glob.match("*/redis:*", null, "docker.io/library/redis:7")
	glob.match("redis:*", null, "redis:7.2")
}

test_shipped_image_patterns_compile if {
	every rule in data.injector.config.image_variants {
		rule.variant in data.injector.config.requestable_variants
		every pattern in rule.images {
			is_boolean(glob.match(pattern, null, "example.com/app:1"))
		}
	}
}

# --- values ------------------------------------------------------------------------------------------

test_resource_annotation_overrides if {
	pod := labelled({}, {
		"sidecar.istio.io/proxyCPU": "200m",
		"sidecar.istio.io/proxyMemory": "256Mi",
		"sidecar.istio.io/proxyCPULimit": "1.5",
		"sidecar.istio.io/proxyMemoryLimit": "2Gi",
	})
	decision := mutate.decision with input as pod
	decision.inject == true
	decision.values.proxy.resources == {"requests": {"cpu": "200m", "memory": "256Mi"}, "limits": {"cpu": "1.5", "memory": "2Gi"}}
	object.remove(decision.values, ["proxy"]) == object.remove(default_values, ["proxy"])
	object.remove(decision.values.proxy, ["resources"]) == object.remove(default_values.proxy, ["resources"])
	array.slice(decision.reasons, 3, 7) == [
		`pod annotation sidecar.istio.io/proxyCPU="200m" sets proxy requests.cpu`,
		`pod annotation sidecar.istio.io/proxyCPULimit="1.5" sets proxy limits.cpu`,
		`pod annotation sidecar.istio.io/proxyMemory="256Mi" sets proxy requests.memory`,
		`pod annotation sidecar.istio.io/proxyMemoryLimit="2Gi" sets proxy limits.memory`,
	]
	decision.warnings == []
}

test_one_resource_override_drops_the_defaults_as_istio_does if {
	decision := mutate.decision with input as labelled({}, {"sidecar.istio.io/proxyMemory": "1e9"})
	decision.values.proxy.resources == {"requests": {"memory": "1e9"}}
	limit_only := mutate.decision with input as labelled({}, {"sidecar.istio.io/proxyCPULimit": "1"})
	limit_only.values.proxy.resources == {"limits": {"cpu": "1"}}
	refused := mutate.decision with input as labelled({}, {"sidecar.istio.io/proxyCPU": "lots"})
	refused.values.proxy.resources == data.injector.values.proxy.resources
	decision.reasons[3] == `pod annotation sidecar.istio.io/proxyMemory="1e9" sets proxy requests.memory`
}

test_invalid_resource_annotation_is_ignored_with_warning if {
	decision := mutate.decision with input as labelled({}, {"sidecar.istio.io/proxyCPU": "lots", "sidecar.istio.io/proxyMemory": "-1Gi"})
	decision.inject == true
	decision.values == default_values
	decision.reasons == injected_by_default.reasons
	decision.warnings == [
		`pod annotation sidecar.istio.io/proxyCPU="lots" is not a resource quantity; ignoring it`,
		`pod annotation sidecar.istio.io/proxyMemory="-1Gi" is not a resource quantity; ignoring it`,
	]
}

test_resource_annotations_ignored_when_not_injecting if {
	pod := pod_input({}, {"annotations": {"sidecar.istio.io/proxyCPU": "lots"}}, app)
	mutate.decision.values == {} with input as pod
	mutate.decision.warnings == [] with input as pod
}

test_quantities if {
	every good in ["1", "100m", "0.5", ".5", "128Mi", "1Gi", "2G", "1e3", "1E-3", "500u", "10n"] {
		overrides.quantity(good)
	}
	every bad in ["", "lots", "1.5.2", "-1", "1 Gi", "1gi", "Mi", "1Qi"] {
		not overrides.quantity(bad)
	}
	not overrides.quantity(100)
}

# --- robustness --------------------------------------------------------------------------------------

test_decision_is_always_defined if {
	every pod in [
		{},
		{"request": null, "object": null, "namespace": null, "injector": null},
		{"request": {"operation": "CREATE"}},
		{"request": {"operation": "CREATE"}, "object": {}},
		{"request": {"operation": "CREATE"}, "object": {"metadata": null, "spec": null}},
		{"request": {"operation": "CREATE"}, "object": {"metadata": {"labels": null, "annotations": null}, "spec": {"containers": null}}},
		{"request": {"operation": "CREATE"}, "object": {"metadata": {"labels": "x", "annotations": [1]}, "spec": {"containers": "x"}}, "namespace": {"labels": []}},
		{"request": {"operation": "CREATE"}, "owner": "Job", "object": {"metadata": {"ownerReferences": "x"}}},
		pod_input(enabled, {"annotations": {"rego-injector.io/status": 5, "sidecar.istio.io/inject": 1}}, {"containers": [null, 1, {"image": null}]}),
	] {
		decision := mutate.decision with input as pod
		is_boolean(decision.inject)
		is_string(decision.variant)
		is_object(decision.values)
		count(decision.reasons) > 0
		is_array(decision.warnings)
	}
}

test_pod_without_metadata_in_enabled_namespace_is_injected if {
	pod := json.remove(in_namespace(enabled), ["/object/metadata"])
	object.remove(mutate.decision, {"code"}) == injected_by_default with input as pod
}

test_empty_config_injects_nothing_by_default if {
	object.remove(mutate.decision, {"code"}) == skipped(
		[`namespace "team-a" is not labelled with an injection label (config namespace_labels lists none)`],
		[],
	) with input as in_namespace(enabled)
		with data.injector.config as {}
}

test_default_decision_when_a_rule_breaks if {
	object.remove(mutate.decision, {"code"}) == skipped(["the injection policy reached no decision for this pod; not injecting"], []) with input as in_namespace(enabled)
		with mutate.variant as {}
}

# Every skip carries its code, from the vocabulary in docs/policy-authors.md; an injection has none.
test_skip_codes if {
	cases := [
		[json.patch(in_namespace(enabled), [{"op": "replace", "path": "/request/operation", "value": "UPDATE"}]), "operation"],
		[on_namespace("kube-system", in_namespace(enabled)), "excluded_namespace"],
		[in_namespace({"istio-injection": "disabled"}), "namespace_disabled"],
		[in_namespace({}), "namespace_not_enabled"],
		[pod_input(enabled, {}, object.union(app, {"hostNetwork": true})), "host_network"],
		[labelled({"sidecar.istio.io/inject": "false"}, {}), "opted_out"],
		[labelled({"rego-injector.io/role": "mesh-gateway"}, {}), "never_inject_selector"],
	]
	every c in cases {
		d := mutate.decision with input as c[0]
		d.code == c[1]
	}
	disabled := mutate.decision with input as in_namespace(enabled) with data.injector.config.policy as "disabled"
	disabled.code == "policy_disabled"
	injected := mutate.decision with input as in_namespace(enabled)
	not injected.code
}

test_a_pod_that_declares_its_proxy_keeps_it_where_it_is if {
	in_containers := pod_input(enabled, {}, {"containers": [{"name": "app"}, {"name": "istio-proxy", "image": "auto"}]})
	placement_of(in_containers) == {"native": false, "reason": "the pod declares its own istio-proxy container among its containers: it stays there"}
	in_inits := pod_input(enabled, {"annotations": {"sidecar.istio.io/nativeSidecar": "false"}}, {"initContainers": [{"name": "istio-proxy"}], "containers": [{"name": "app"}]})
	placement_of(in_inits).native == true
}
