# Tests for typed access to the bundle's settings and template values.
package injector.lib_test

import data.injector.lib

test_setting_reads_the_shipped_config if {
	lib.setting("policy", "disabled") == "enabled"
	lib.namespace_label_keys == ["istio-injection", "rego-injector.io/inject"]
	lib.pod_keys == ["sidecar.istio.io/inject", "rego-injector.io/inject"]
	lib.excluded_namespaces == {"kube-system", "kube-public", "kube-node-lease"}
	lib.requestable_variants == {"sidecar", "native", "proxy-only", "gateway", "grpc-agent", "grpc-simple"}
	lib.init_containers_before_proxy == ""
	lib.template_settings["grpc-simple"] == {"rewrite_probes": false, "merge_metrics": false}
	lib.native_owner_kinds == {"Job", "CronJob"}
	lib.require_sidecar_label == "rego-injector.io/require-sidecar"
	lib.privileged_variants == {}
	lib.refusal_mode == "ignore"
	lib.proxy_image_registries == ["docker.io/istio/"]
	lib.log_levels == ["trace", "debug", "info", "warning", "error", "critical", "off"]
	lib.resource_maximum("cpu") == "4"
	lib.resource_maximum("memory") == "4Gi"
	not lib.resource_maximum("ephemeral-storage")
}

test_override_settings_fall_back_when_missing_or_mistyped if {
	lib.override_setting("proxy_image", "registries", []) == ["docker.io/istio/"]
	lib.override_setting("proxy_image", "registries", "") == ""
	lib.override_setting("nope", "registries", []) == []
	lib.proxy_image_registries == [] with data.injector.config.overrides as "x"
	lib.proxy_image_registries == ["a/"] with data.injector.config.overrides.proxy_image.registries as ["a/", 1, null]
	lib.log_levels == lib.envoy_log_levels with data.injector.config.overrides.log_level as []
	lib.log_levels == [] with data.injector.config.overrides.log_level.levels as []
	lib.privileged_variants == {} with data.injector.config.privileged_variants as ["gateway"]
}

test_refusal_mode if {
	lib.refusal_mode == "deny" with data.injector.config.overrides.refused as "deny"
	every mode in ["ignore", "Deny", "", 1, null, ["deny"]] {
		lib.refusal_mode == "ignore" with data.injector.config.overrides.refused as mode
	}
	lib.refusal_mode == "ignore" with data.injector.config as {}
}

test_resource_maximum_as_text if {
	lib.resource_maximum("cpu") == "2" with data.injector.config.overrides.resources.max.cpu as 2
	lib.resource_maximum("cpu") == "0.5" with data.injector.config.overrides.resources.max.cpu as 0.5
	lib.resource_maximum("cpu") == "null" with data.injector.config.overrides.resources.max.cpu as null
	not lib.resource_maximum("cpu") with data.injector.config.overrides.resources.max as "4"
}

enforcement := {
	"rules": {"require_sidecar": "warn", "proxy_uid": "audit", "opted_out": "dryrun"},
	"namespaces": {
		"team-a": {"require_sidecar": "dryrun", "opted_out": "Deny", "sidecar_removed": "deny"},
		"team-b": "warn",
	},
}

in_team(name) := {"namespace": {"name": name}}

test_enforcement_mode_by_rule_then_namespace if {
	lib.enforcement_mode("require_sidecar", "deny") == "dryrun" with data.injector.config.enforcement as enforcement with input as in_team("team-a")
	lib.enforcement_mode("require_sidecar", "deny") == "warn" with data.injector.config.enforcement as enforcement with input as in_team("team-c")
	lib.enforcement_mode("sidecar_removed", "warn") == "deny" with data.injector.config.enforcement as enforcement with input as in_team("team-a")
	lib.enforcement_mode("sidecar_removed", "warn") == "warn" with data.injector.config.enforcement as enforcement with input as in_team("team-c")
}

test_enforcement_mode_skips_values_that_are_not_modes if {
	# A namespace's unknown value leaves the rule's mode; a rule's unknown value leaves the default.
	lib.enforcement_mode("opted_out", "warn") == "dryrun" with data.injector.config.enforcement as enforcement with input as in_team("team-a")
	lib.enforcement_mode("proxy_uid", "deny") == "deny" with data.injector.config.enforcement as enforcement with input as in_team("team-c")
	lib.enforcement_mode("require_sidecar", "deny") == "warn" with data.injector.config.enforcement as enforcement with input as in_team("team-b")
	every bad in ["deny", [], {"rules": "warn"}, {"rules": {"proxy_uid": ["warn"]}}, {"namespaces": {"team-a": {"proxy_uid": null}}}] {
		lib.enforcement_mode("proxy_uid", "deny") == "deny" with data.injector.config.enforcement as bad with input as in_team("team-a")
	}
	lib.enforcement_mode("proxy_uid", "deny") == "deny" with data.injector.config as {} with input as in_team("team-a")
}

test_setting_falls_back_when_missing_or_mistyped if {
	lib.setting("no_such_key", "fallback") == "fallback"
	lib.global_policy == "enabled" with data.injector.config.policy as ["disabled"]
	lib.pod_keys == [] with data.injector.config as {}
	lib.global_policy == "enabled" with data.injector.config as {}
	lib.excluded_namespaces == set() with data.injector.config.excluded_namespaces as "kube-system"
	lib.resource_annotations == {} with data.injector.config.resource_annotations as []
}

test_values_read_the_shipped_values if {
	lib.values.proxy.name == "istio-proxy"
	lib.proxy_name == "istio-proxy"
	lib.init_name == "istio-init"
	lib.proxy_uid == 1337
}

test_values_fall_back_when_missing if {
	lib.values == {} with data.injector.values as "none"
	lib.proxy_name == "istio-proxy" with data.injector.values as {}
	lib.init_name == "istio-init" with data.injector.values as {}
	lib.proxy_uid == 1337 with data.injector.values.proxy.uid as "1337"
}

test_values_follow_the_bundle if {
	lib.proxy_name == "envoy" with data.injector.values.proxy.name as "envoy"
	lib.init_name == "redirect" with data.injector.values.init.name as "redirect"
	lib.init_name == "istio-validation" with data.injector.values.cni.enabled as true
	lib.init_name == "istio-init" with data.injector.values.cni as {"enabled": true, "validationName": 7}
	lib.proxy_uid == 101 with data.injector.values.proxy.uid as 101
}
