# Tests for typed access to the bundle's settings and template values.
package injector.lib_test

import data.injector.lib

test_setting_reads_the_shipped_config if {
	lib.setting("policy", "disabled") == "enabled"
	lib.namespace_label_keys == ["istio-injection", "rego-injector.io/inject"]
	lib.pod_keys == ["sidecar.istio.io/inject", "rego-injector.io/inject"]
	lib.excluded_namespaces == {"kube-system", "kube-public", "kube-node-lease"}
	lib.requestable_variants == {"sidecar", "native", "proxy-only"}
	lib.native_owner_kinds == {"Job", "CronJob"}
	lib.require_sidecar_label == "rego-injector.io/require-sidecar"
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
	lib.proxy_uid == 101 with data.injector.values.proxy.uid as 101
}
