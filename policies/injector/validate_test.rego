# Tests for the validating policy, against the shipped config and values.
package injector.validate_test

import data.injector.validate

required := {"istio-injection": "enabled", "rego-injector.io/require-sidecar": "true"}

proxy := {"name": "istio-proxy", "image": "docker.io/istio/proxyv2:1.28.0"}

init := {"name": "istio-init", "image": "docker.io/istio/proxyv2:1.28.0"}

app := {"name": "app", "image": "example.com/team-a/web:1.4"}

# A pod being created in namespace team-a with the given namespace labels, pod metadata and spec.
pod_input(namespace_labels, metadata, spec) := {
	"request": {
		"kind": {"group": "", "version": "v1", "kind": "Pod"},
		"namespace": "team-a",
		"operation": "CREATE",
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

injected := {"initContainers": [init], "containers": [app, proxy]}

verdict(pod) := {"deny": deny, "warn": warn} if {
	deny := validate.deny with input as pod
	warn := validate.warn with input as pod
}

allowed := {"deny": set(), "warn": set()}

# --- the sidecar is required -------------------------------------------------------------------------

test_required_sidecar_missing_is_denied if {
	verdict(pod_input(required, {}, {"containers": [app]})) == {
		"deny": {`namespace "team-a" requires the istio-proxy sidecar (label rego-injector.io/require-sidecar=true), but pod "web-1" has no container named istio-proxy`},
		"warn": set(),
	}
}

test_required_sidecar_missing_after_opt_out_is_denied if {
	pod := pod_input(required, {"labels": {"sidecar.istio.io/inject": "false"}}, {"containers": [app]})
	verdict(pod) == {
		"deny": {`namespace "team-a" requires the istio-proxy sidecar (label rego-injector.io/require-sidecar=true), but pod "web-1" has no container named istio-proxy; it opted out with pod label sidecar.istio.io/inject="false"`},
		"warn": {`pod "web-1" opted out of injection with pod label sidecar.istio.io/inject="false" and runs outside the mesh, although namespace "team-a" is labelled istio-injection=enabled`},
	}
}

test_required_sidecar_missing_with_host_network_is_denied if {
	pod := pod_input(required, {"name": "", "generateName": "node-agent-"}, {"hostNetwork": true, "containers": [app]})
	verdict(pod).deny == {`namespace "team-a" requires the istio-proxy sidecar (label rego-injector.io/require-sidecar=true), but pod "node-agent-" (generateName) has no container named istio-proxy; it uses hostNetwork, which is never injected`}
}

test_required_sidecar_present_is_allowed if {
	verdict(pod_input(required, {}, injected)) == allowed
}

test_required_native_sidecar_is_allowed if {
	native := {"initContainers": [init, object.union(proxy, {"restartPolicy": "Always"})], "containers": [app]}
	verdict(pod_input(required, {}, native)) == allowed
}

test_sidecar_not_required if {
	verdict(pod_input({"istio-injection": "enabled"}, {}, {"containers": [app]})) == allowed
	verdict(pod_input({"rego-injector.io/require-sidecar": "false"}, {}, {"containers": [app]})) == allowed
	verdict(pod_input({"rego-injector.io/require-sidecar": "yes"}, {}, {"containers": [app]})) == allowed
}

test_require_sidecar_label_follows_the_config if {
	pod := pod_input({"mesh/strict": "true"}, {}, {"containers": [app]})
	count(validate.deny) == 1 with input as pod with data.injector.config.require_sidecar_label as "mesh/strict"
	validate.deny == set() with input as pod with data.injector.config.require_sidecar_label as ""
}

test_required_sidecar_names_unnamed_pods if {
	pod := json.remove(pod_input(required, {}, {"containers": [app]}), ["/object/metadata"])
	validate.deny == {`namespace "team-a" requires the istio-proxy sidecar (label rego-injector.io/require-sidecar=true), but unnamed pod has no container named istio-proxy`} with input as pod
}

test_required_sidecar_without_spec if {
	pod := json.remove(pod_input(required, {}, {}), ["/object/spec"])
	count(validate.deny) == 1 with input as pod
}

# --- containers running as the sidecar's UID ---------------------------------------------------------

as_uid(container, uid) := object.union(container, {"securityContext": {"runAsUser": uid}})

uid_message(name) := sprintf(
	"container %q of pod \"web-1\" runs as UID 1337, the sidecar's own UID: the sidecar lets that UID's traffic through untouched, so the container would bypass it; set another securityContext.runAsUser",
	[name],
)

test_container_as_proxy_uid_is_denied if {
	spec := {"initContainers": [init], "containers": [as_uid(app, 1337), as_uid(proxy, 1337)]}
	verdict(pod_input({}, {}, spec)) == {"deny": {uid_message("app")}, "warn": set()}
}

test_init_container_as_proxy_uid_is_denied if {
	spec := {"initContainers": [as_uid(init, 1337), as_uid({"name": "migrate"}, 1337)], "containers": [app, proxy]}
	verdict(pod_input({}, {}, spec)).deny == {uid_message("migrate")}
}

test_pod_security_context_as_proxy_uid_is_denied if {
	spec := object.union(injected, {"securityContext": {"runAsUser": 1337}})
	verdict(pod_input({}, {}, spec)).deny == {uid_message("app")}
}

test_container_security_context_beats_the_pods if {
	spec := {
		"securityContext": {"runAsUser": 1337},
		"initContainers": [init],
		"containers": [as_uid(app, 1000), proxy],
	}
	verdict(pod_input({}, {}, spec)) == allowed

	null_uid := {
		"securityContext": {"runAsUser": 1000},
		"containers": [as_uid(app, null), as_uid(proxy, 1337)],
	}
	verdict(pod_input({}, {}, null_uid)) == allowed
}

test_proxy_uid_without_sidecar_is_allowed if {
	verdict(pod_input({}, {}, {"containers": [as_uid(app, 1337)]})) == allowed
}

test_proxy_uid_follows_the_values if {
	spec := {"containers": [as_uid(app, 101), proxy]}
	count(validate.deny) == 1 with input as pod_input({}, {}, spec) with data.injector.values.proxy.uid as 101
	validate.deny == set() with input as pod_input({}, {}, spec)
}

# --- warnings ----------------------------------------------------------------------------------------

test_legacy_annotation_warns if {
	pod := pod_input({"istio-injection": "enabled"}, {"annotations": {"sidecar.istio.io/inject": "true"}}, injected)
	verdict(pod) == {
		"deny": set(),
		"warn": {`pod "web-1" uses the annotation sidecar.istio.io/inject="true"; the label is preferred (the webhook can filter on it): set label sidecar.istio.io/inject="true" instead`},
	}
}

test_legacy_annotation_with_invalid_value_warns if {
	pod := pod_input({}, {"annotations": {"rego-injector.io/inject": "yes"}}, {"containers": [app]})
	verdict(pod).warn == {`pod "web-1" uses the annotation rego-injector.io/inject="yes"; the label is preferred (the webhook can filter on it): set label rego-injector.io/inject="true" or rego-injector.io/inject="false" instead`}
}

test_label_does_not_warn if {
	verdict(pod_input({}, {"labels": {"sidecar.istio.io/inject": "true"}}, injected)) == allowed
}

test_opt_out_in_enabled_namespace_warns if {
	pod := pod_input({"rego-injector.io/inject": "enabled"}, {"annotations": {"rego-injector.io/inject": "false"}}, {"containers": [app]})
	verdict(pod).warn == {
		`pod "web-1" opted out of injection with pod annotation rego-injector.io/inject="false" and runs outside the mesh, although namespace "team-a" is labelled rego-injector.io/inject=enabled`,
		`pod "web-1" uses the annotation rego-injector.io/inject="false"; the label is preferred (the webhook can filter on it): set label rego-injector.io/inject="false" instead`,
	}
}

test_opt_out_elsewhere_does_not_warn if {
	verdict(pod_input({}, {"labels": {"sidecar.istio.io/inject": "false"}}, {"containers": [app]})) == allowed
	verdict(pod_input({"istio-injection": "disabled"}, {"labels": {"sidecar.istio.io/inject": "false"}}, {"containers": [app]})) == allowed
}

status := json.marshal({"revision": "default-1", "variant": "sidecar", "containers": ["istio-proxy"], "initContainers": ["istio-init"]})

test_removed_sidecar_warns if {
	pod := pod_input({}, {"annotations": {"rego-injector.io/status": status}}, {"containers": [app]})
	verdict(pod) == {
		"deny": set(),
		"warn": {
			`pod "web-1" has annotation rego-injector.io/status saying container "istio-proxy" was injected, but it has no such container: the sidecar was removed after injection`,
			`pod "web-1" has annotation rego-injector.io/status saying init container "istio-init" was injected, but it has no such container: the sidecar was removed after injection`,
		},
	}
}

test_intact_injection_does_not_warn if {
	verdict(pod_input({}, {"annotations": {"rego-injector.io/status": status}}, injected)) == allowed
}

test_unreadable_status_does_not_warn if {
	bad := json.marshal({"revision": "default-1", "containers": "istio-proxy", "initContainers": {"name": "istio-init"}})
	verdict(pod_input({}, {"annotations": {"rego-injector.io/status": bad}}, {"containers": [app]})) == allowed
	odd := json.marshal({"revision": "default-1", "containers": [1, null], "initContainers": [{"name": "istio-init"}]})
	verdict(pod_input({}, {"annotations": {"rego-injector.io/status": odd}}, {"containers": [app]})) == allowed
	verdict(pod_input({}, {"annotations": {"rego-injector.io/status": bad}}, {"containers": [app]})) == allowed
	verdict(pod_input({}, {"annotations": {"rego-injector.io/status": "{"}}, {"containers": [app]})) == allowed
}

# --- scope -------------------------------------------------------------------------------------------

everything_wrong := pod_input(
	required,
	{"labels": {"sidecar.istio.io/inject": "false"}, "annotations": {"sidecar.istio.io/inject": "false", "rego-injector.io/status": status}},
	{"securityContext": {"runAsUser": 1337}, "containers": [app]},
)

test_everything_wrong_is_reported if {
	v := verdict(everything_wrong)
	count(v.deny) == 1
	count(v.warn) == 4
}

test_only_pods_are_checked if {
	deployment := json.patch(everything_wrong, [
		{"op": "replace", "path": "/object/kind", "value": "Deployment"},
		{"op": "replace", "path": "/request/kind/kind", "value": "Deployment"},
	])
	verdict(deployment) == allowed
}

test_pod_kind_from_request_alone if {
	pod := json.remove(everything_wrong, ["/object/kind"])
	count(verdict(pod).deny) == 1
}

test_pod_kind_from_object_alone if {
	pod := json.remove(everything_wrong, ["/request/kind"])
	count(verdict(pod).deny) == 1
}

test_only_creation_is_checked if {
	every operation in ["UPDATE", "DELETE", "CONNECT"] {
		verdict(json.patch(everything_wrong, [{"op": "replace", "path": "/request/operation", "value": operation}])) == allowed
	}
	verdict(json.remove(everything_wrong, ["/request/operation"])) == allowed
}

# --- enforcement modes -------------------------------------------------------------------------------

# A pod that breaks exactly one rule, by rule name.
rule_cases := {
	"require_sidecar": pod_input(required, {}, {"containers": [app]}),
	"proxy_uid": pod_input({}, {}, {"initContainers": [init], "containers": [as_uid(app, 1337), proxy]}),
	"inject_annotation": pod_input({}, {"annotations": {"sidecar.istio.io/inject": "true"}}, injected),
	"opted_out": pod_input({"istio-injection": "enabled"}, {"labels": {"sidecar.istio.io/inject": "false"}}, {"containers": [app]}),
	"sidecar_removed": pod_input({}, {"annotations": {"rego-injector.io/status": status}}, {"containers": [app]}),
}

default_modes := {
	"require_sidecar": "deny",
	"proxy_uid": "deny",
	"inject_annotation": "warn",
	"opted_out": "warn",
	"sidecar_removed": "warn",
}

modes := ["deny", "warn", "dryrun"]

# The messages of pod in each mode, and the violations, under the enforcement config given.
enforced(pod, enforcement) := result if {
	result := {
		"deny": validate.deny,
		"warn": validate.warn,
		"dryrun": validate.dryrun,
		"violations": validate.violations,
	} with input as pod with data.injector.config.enforcement as enforcement
}

# All of pod's violations are of rule, in mode, and their messages are exactly those of mode.
in_mode(result, rule, mode) if {
	count(result.violations) > 0
	every v in result.violations {
		v.rule == rule
		v.mode == mode
	}
	every m in modes {
		result[m] == {v.message | some v in result.violations; v.mode == m}
	}
}

test_shipped_modes_are_the_defaults if {
	every rule, pod in rule_cases {
		in_mode(enforced(pod, data.injector.config.enforcement), rule, default_modes[rule])
		in_mode(enforced(pod, null), rule, default_modes[rule])
	}
}

test_every_rule_in_every_mode if {
	every rule, pod in rule_cases {
		every mode in modes {
			in_mode(enforced(pod, {"rules": {rule: mode}}), rule, mode)
		}
	}
}

test_violations_carry_rule_mode_and_message if {
	enforced(rule_cases.require_sidecar, {"rules": {"require_sidecar": "dryrun"}}) == {
		"deny": set(),
		"warn": set(),
		"dryrun": {`namespace "team-a" requires the istio-proxy sidecar (label rego-injector.io/require-sidecar=true), but pod "web-1" has no container named istio-proxy`},
		"violations": {{
			"rule": "require_sidecar",
			"mode": "dryrun",
			"message": `namespace "team-a" requires the istio-proxy sidecar (label rego-injector.io/require-sidecar=true), but pod "web-1" has no container named istio-proxy`,
		}},
	}
}

in_namespace(name, pod) := json.patch(pod, [
	{"op": "replace", "path": "/namespace/name", "value": name},
	{"op": "replace", "path": "/request/namespace", "value": name},
])

test_namespace_modes_beat_rule_modes if {
	enforcement := {
		"rules": {"require_sidecar": "deny", "sidecar_removed": "dryrun"},
		"namespaces": {"legacy": {"require_sidecar": "warn", "sidecar_removed": "deny"}},
	}
	in_mode(enforced(in_namespace("legacy", rule_cases.require_sidecar), enforcement), "require_sidecar", "warn")
	in_mode(enforced(in_namespace("legacy", rule_cases.sidecar_removed), enforcement), "sidecar_removed", "deny")
	in_mode(enforced(rule_cases.require_sidecar, enforcement), "require_sidecar", "deny")
	in_mode(enforced(rule_cases.sidecar_removed, enforcement), "sidecar_removed", "dryrun")

	# A rule the namespace does not name keeps its mode there.
	in_mode(enforced(in_namespace("legacy", rule_cases.proxy_uid), enforcement), "proxy_uid", "deny")
}

test_unknown_modes_fall_back if {
	every enforcement in [
		{"rules": {"require_sidecar": "block"}},
		{"rules": {"require_sidecar": "Warn"}},
		{"rules": {"require_sidecar": 1}},
		{"rules": "warn"},
		{"namespaces": {"team-a": {"require_sidecar": "off"}}},
		{"namespaces": {"team-a": "warn"}},
		{"namespaces": ["team-a"]},
		"dryrun",
		[],
	] {
		in_mode(enforced(rule_cases.require_sidecar, enforcement), "require_sidecar", "deny")
	}

	# An unknown namespace mode leaves the rule's configured mode.
	in_mode(enforced(rule_cases.require_sidecar, {"rules": {"require_sidecar": "warn"}, "namespaces": {"team-a": {"require_sidecar": "wran"}}}), "require_sidecar", "warn")
}

test_one_pod_in_several_modes if {
	result := enforced(everything_wrong, {"rules": {"inject_annotation": "dryrun", "require_sidecar": "warn"}})
	count(result.deny) == 0
	count(result.warn) == 4
	count(result.dryrun) == 1
	{v.rule | some v in result.violations} == {"require_sidecar", "inject_annotation", "opted_out", "sidecar_removed"}
}

test_verdict_is_always_defined if {
	every pod in [
		{},
		{"request": null, "object": null},
		{"request": {"operation": "CREATE"}, "object": {"kind": "Pod"}},
		{"request": {"operation": "CREATE"}, "object": {"kind": "Pod", "metadata": {"annotations": null}, "spec": {"containers": [null, {"name": 1}, {"securityContext": null}]}}},
		{"request": {"operation": "CREATE"}, "object": {"kind": "Pod", "spec": {"securityContext": "x", "containers": [proxy, {"securityContext": {"runAsUser": "1337"}}]}}},
	] {
		v := verdict(pod)
		is_set(v.deny)
		is_set(v.warn)
		is_set(validate.dryrun) with input as pod
		is_set(validate.violations) with input as pod
	}
}

# --- ephemeral containers (kubectl debug) ------------------------------------------------------------

debugger := {"name": "debugger-x7k2", "image": "busybox:1.36"}

# A running pod getting ephemeral containers: the pods/ephemeralcontainers subresource is updated
# with the whole pod, old and new.
adding_ephemeral(spec, old_ephemeral, new_ephemeral) := object.union(pod_input({}, {}, object.union(spec, {"ephemeralContainers": new_ephemeral})), {
	"request": {"kind": {"group": "", "version": "v1", "kind": "Pod"}, "namespace": "team-a", "operation": "UPDATE", "subResource": "ephemeralcontainers"},
	"oldObject": {"apiVersion": "v1", "kind": "Pod", "spec": object.union(spec, {"ephemeralContainers": old_ephemeral})},
})

test_ephemeral_container_as_proxy_uid_is_denied if {
	pod := adding_ephemeral(injected, [], [as_uid(debugger, 1337)])
	verdict(pod).deny == {`ephemeral container "debugger-x7k2" added to pod "web-1" runs as UID 1337, the sidecar's own UID: the sidecar lets that UID's traffic through untouched, so the container would bypass it; set another securityContext.runAsUser`}
	validate.violations == {{"rule": "proxy_uid", "mode": "deny", "message": verdict(pod).deny[_]}} with input as pod
}

test_ephemeral_container_inherits_the_pods_uid if {
	spec := object.union(injected, {"securityContext": {"runAsUser": 1337}})
	pod := adding_ephemeral(spec, [], [debugger])
	count(verdict(pod).deny) == 1
}

test_ephemeral_containers_allowed if {
	# another UID; a pod without the sidecar; an ephemeral container that was already there
	verdict(adding_ephemeral(injected, [], [as_uid(debugger, 0)])) == allowed
	verdict(adding_ephemeral({"containers": [app]}, [], [as_uid(debugger, 1337)])) == allowed
	verdict(adding_ephemeral(injected, [as_uid(debugger, 1337)], [as_uid(debugger, 1337), {"name": "second"}])) == allowed
}

test_ephemeral_container_rules_only_on_the_subresource if {
	# a pod created with ephemeral containers (not possible through the API) is judged as created
	pod := pod_input({}, {}, object.union(injected, {"ephemeralContainers": [as_uid(debugger, 1337)]}))
	verdict(pod) == allowed
}
