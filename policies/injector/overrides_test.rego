# Tests for governed overrides, against the shipped config and values unless a test says otherwise.
package injector.overrides_test

import data.injector.mutate
import data.injector.mutate_test
import data.injector.overrides

# A pod that user alice (group dev) creates in the enabled namespace team-a, running as service
# account web, with the given annotations.
pod(annotations) := {
	"request": {
		"kind": {"group": "", "version": "v1", "kind": "Pod"},
		"namespace": "team-a",
		"operation": "CREATE",
		"userInfo": {"username": "alice", "groups": ["dev", "system:authenticated"]},
	},
	"object": {
		"kind": "Pod",
		"metadata": {"name": "web-1", "namespace": "team-a", "annotations": annotations},
		"spec": {"serviceAccountName": "web", "containers": [{"name": "app", "image": "example.com/web:1"}]},
	},
	"namespace": {"name": "team-a", "labels": {"istio-injection": "enabled"}},
	"injector": {"revision": "default-1", "namespace": "rego-injector-system"},
}

# These tests take gateway, a template the bundle has, for a variant pods may not request: the
# shipped config lets them (test_gateway_is_requestable_as_in_istio).
restricted_variants := ["native", "proxy-only", "sidecar"]

decide(annotations) := decision if {
	decision := mutate.decision with input as pod(annotations) with data.injector.config.requestable_variants as restricted_variants
}

deny_mode := {"refused": "deny"}

default_reasons := [
	`namespace "team-a" is labelled istio-injection=enabled`,
	"the global injection policy is enabled: pods in enabled namespaces are injected unless they opt out",
	"no variant requested and no image rule matched: default variant sidecar",
]

placement_reason := "config native_sidecars is true: istio-proxy runs as a native sidecar (an init container with restartPolicy: Always)"

# The values of a pod that asks for nothing.
shipped := mutate_test.default_values

# The decision honours the override: values as shipped but for patch, one more reason, no warning.
honoured(annotations, patch, reason) if {
	d := decide(annotations)
	d.inject == true
	d.values == object.union(shipped, patch)
	d.reasons == array.concat(default_reasons, [reason, placement_reason])
	d.warnings == []
	d.refused_overrides == []
}

# The decision refuses the override: injected as shipped, with a warning and a refused_overrides entry.
ignored(annotations, reason) if {
	[key] := [k | some k, _ in annotations]
	d := decide(annotations)
	d.inject == true
	d.values == shipped
	d.reasons == array.concat(default_reasons, [placement_reason])
	d.warnings == [sprintf("%s; ignoring it", [reason])]
	d.refused_overrides == [{"annotation": key, "value": annotations[key], "reason": reason}]
}

# With overrides.refused: deny, the same refusal refuses the pod.
denied(annotations, reason) if {
	[key] := [k | some k, _ in annotations]
	d := decide(annotations) with data.injector.config.overrides as object.union(data.injector.config.overrides, deny_mode)
	d == {
		"inject": false,
		"code": "override_refused",
		"variant": "",
		"values": {},
		"reasons": array.concat(array.slice(default_reasons, 0, 2), ["config overrides.refused is deny: a pod that asks for an override it may not use is refused"]),
		"warnings": [],
		"deny": [reason],
		"refused_overrides": [{"annotation": key, "value": annotations[key], "reason": reason}],
	}
}

refused(annotations, reason) if {
	ignored(annotations, reason)
	denied(annotations, reason)
}

test_pod_without_overrides_is_injected_as_shipped if {
	d := decide({})
	d.values == shipped
	d.refused_overrides == []
	not d.deny
	d2 := decide({}) with data.injector.config.overrides.refused as "deny"
	d2.inject == true
}

# --- proxy image -------------------------------------------------------------------------------------

test_proxy_image_from_an_allowed_registry if {
	honoured(
		{"sidecar.istio.io/proxyImage": "docker.io/istio/proxyv2:1.29.0"},
		{"proxy": {"image": "docker.io/istio/proxyv2:1.29.0"}},
		`pod annotation sidecar.istio.io/proxyImage="docker.io/istio/proxyv2:1.29.0" sets the proxy image`,
	)
}

test_proxy_image_from_another_registry_is_refused if {
	refused(
		{"sidecar.istio.io/proxyImage": "evil.example.com/istio/proxyv2:1.29.0"},
		`pod annotation sidecar.istio.io/proxyImage="evil.example.com/istio/proxyv2:1.29.0" names an image outside the allowed registries (docker.io/istio/)`,
	)

	# Compared as written: the short Docker Hub name is another string.
	ignored(
		{"sidecar.istio.io/proxyImage": "istio/proxyv2:1.29.0"},
		`pod annotation sidecar.istio.io/proxyImage="istio/proxyv2:1.29.0" names an image outside the allowed registries (docker.io/istio/)`,
	)
}

test_proxy_image_that_is_not_a_reference_is_refused if {
	every image in [
		"docker.io/istio/proxyv2:1.28.0\ncommand: [sh]",
		"docker.io/istio/proxyv2:1.28.0 ",
		"docker.io/istio/ProxyV2:1.28.0",
		"docker.io/istio/",
		"",
	] {
		refused({"sidecar.istio.io/proxyImage": image}, sprintf("pod annotation sidecar.istio.io/proxyImage=%q is not an image reference", [image]))
	}
}

test_proxy_image_registries_follow_the_config if {
	image := {"sidecar.istio.io/proxyImage": "registry.example.com:5000/mesh/proxyv2@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}
	d := decide(image) with data.injector.config.overrides.proxy_image.registries as ["quay.io/", "registry.example.com:5000/mesh/"]
	d.values.proxy.image == image["sidecar.istio.io/proxyImage"]

	none := decide(image) with data.injector.config.overrides.proxy_image.registries as []
	none.refused_overrides[0].reason == sprintf("pod annotation sidecar.istio.io/proxyImage=%q names an image outside the allowed registries (config overrides.proxy_image.registries lists none)", [image["sidecar.istio.io/proxyImage"]])

	mistyped := decide(image) with data.injector.config.overrides.proxy_image.registries as "registry.example.com:5000/mesh/"
	count(mistyped.refused_overrides) == 1
}

test_shipped_image_may_be_asked_for if {
	honoured(
		{"sidecar.istio.io/proxyImage": data.injector.values.proxy.image},
		{},
		sprintf("pod annotation sidecar.istio.io/proxyImage=%q sets the proxy image", [data.injector.values.proxy.image]),
	)
}

test_image_references if {
	every image in [
		"proxyv2",
		"istio/proxyv2",
		"docker.io/istio/proxyv2:1.28.0",
		"localhost:5000/proxy_v2__x:latest",
		"gcr.io/istio-release/proxyv2:1.28.0-distroless",
		"docker.io/istio/proxyv2@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
	] {
		regex.match(overrides.image_reference_pattern, image)
	}
	every image in ["", "docker.io/istio/proxyv2:", ":1.28", "docker.io//proxyv2", "-x/proxy", "a/b:c d", "a@sha256:12"] {
		not regex.match(overrides.image_reference_pattern, image)
	}
}

# --- log level ---------------------------------------------------------------------------------------

test_log_level_allowed if {
	honoured(
		{"sidecar.istio.io/logLevel": "debug"},
		{"proxy": {"logLevel": "debug"}},
		`pod annotation sidecar.istio.io/logLevel="debug" sets the proxy log level`,
	)
}

test_log_level_not_allowed_is_refused if {
	refused(
		{"sidecar.istio.io/logLevel": "info\n  privileged: true"},
		`pod annotation sidecar.istio.io/logLevel="info\n  privileged: true" is not an allowed log level (allowed: trace, debug, info, warning, error, critical, off)`,
	)
}

test_log_levels_follow_the_config if {
	d := decide({"sidecar.istio.io/logLevel": "trace"}) with data.injector.config.overrides.log_level.levels as ["info", "debug"]
	d.refused_overrides[0].reason == `pod annotation sidecar.istio.io/logLevel="trace" is not an allowed log level (allowed: info, debug)`
	d.values.proxy.logLevel == "warning"

	none := decide({"sidecar.istio.io/logLevel": "info"}) with data.injector.config.overrides.log_level.levels as []
	none.refused_overrides[0].reason == `pod annotation sidecar.istio.io/logLevel="info" is not an allowed log level (allowed: none)`

	# A mistyped or missing list falls back to Envoy's levels.
	mistyped := decide({"sidecar.istio.io/logLevel": "off"}) with data.injector.config.overrides.log_level.levels as "info"
	mistyped.values.proxy.logLevel == "off"
	missing := decide({"sidecar.istio.io/logLevel": "off"}) with data.injector.config.overrides as {}
	missing.values.proxy.logLevel == "off"
}

test_non_string_value_is_refused if {
	d := decide({"sidecar.istio.io/logLevel": 5})
	d.refused_overrides == [{"annotation": "sidecar.istio.io/logLevel", "value": "5", "reason": "pod annotation sidecar.istio.io/logLevel=5 is not a string"}]
}

# --- resources ---------------------------------------------------------------------------------------

# The decision honours resource annotations: as Istio, the proxy's resources are theirs alone.
honoured_resources(annotations, resources, reason) if {
	d := decide(annotations)
	d.values == object.union(json.remove(shipped, ["proxy/resources"]), {"proxy": {"resources": resources}})
	d.reasons == array.concat(default_reasons, [reason, placement_reason])
	d.warnings == []
}

test_resources_within_the_maxima if {
	honoured_resources(
		{"sidecar.istio.io/proxyCPULimit": "4"},
		{"limits": {"cpu": "4"}},
		`pod annotation sidecar.istio.io/proxyCPULimit="4" sets proxy limits.cpu`,
	)
	honoured_resources(
		{"sidecar.istio.io/proxyMemoryLimit": "4Gi"},
		{"limits": {"memory": "4Gi"}},
		`pod annotation sidecar.istio.io/proxyMemoryLimit="4Gi" sets proxy limits.memory`,
	)
	every value in ["3999m", "4000m", "0.5", "500u", "10n", "1e-3"] {
		decide({"sidecar.istio.io/proxyCPU": value}).values.proxy.resources.requests.cpu == value
	}
	every value in ["4294967296", "4096Mi", "4G", "4e9", "128Mi"] {
		decide({"sidecar.istio.io/proxyMemory": value}).values.proxy.resources.requests.memory == value
	}
}

test_resources_above_the_maxima_are_refused if {
	refused(
		{"sidecar.istio.io/proxyCPU": "4001m"},
		`pod annotation sidecar.istio.io/proxyCPU="4001m" is above the largest proxy cpu a pod may ask for, 4 (config overrides.resources.max.cpu)`,
	)
	refused(
		{"sidecar.istio.io/proxyMemoryLimit": "5G"},
		`pod annotation sidecar.istio.io/proxyMemoryLimit="5G" is above the largest proxy memory a pod may ask for, 4Gi (config overrides.resources.max.memory)`,
	)
	every value in ["4294967297", "4097Mi", "1Ti", "1E", "5e9"] {
		count(decide({"sidecar.istio.io/proxyMemory": value}).refused_overrides) == 1
	}
}

test_resource_that_is_not_a_quantity_is_refused if {
	refused(
		{"sidecar.istio.io/proxyCPU": "lots"},
		`pod annotation sidecar.istio.io/proxyCPU="lots" is not a resource quantity`,
	)
}

test_resource_maxima_follow_the_config if {
	# A YAML number reads as its text.
	d := decide({"sidecar.istio.io/proxyCPU": "3"}) with data.injector.config.overrides.resources.max.cpu as 2
	d.refused_overrides[0].reason == `pod annotation sidecar.istio.io/proxyCPU="3" is above the largest proxy cpu a pod may ask for, 2 (config overrides.resources.max.cpu)`

	# No maximum: any quantity.
	big := decide({"sidecar.istio.io/proxyCPU": "64", "sidecar.istio.io/proxyMemory": "1Ti"}) with data.injector.config.overrides.resources as {}
	big.values.proxy.resources.requests == {"cpu": "64", "memory": "1Ti"}
	big.refused_overrides == []

	# A maximum that is not a quantity refuses every override of that resource, and only that one.
	bad := decide({"sidecar.istio.io/proxyCPU": "1", "sidecar.istio.io/proxyMemory": "1Gi"}) with data.injector.config.overrides.resources.max as {"cpu": "four", "memory": "4Gi"}
	bad.refused_overrides == [{
		"annotation": "sidecar.istio.io/proxyCPU",
		"value": "1",
		"reason": `pod annotation sidecar.istio.io/proxyCPU="1" cannot be checked: config overrides.resources.max.cpu, "four", is not a quantity`,
	}]
	bad.values.proxy.resources.requests.memory == "1Gi"
	null_max := decide({"sidecar.istio.io/proxyCPU": "1"}) with data.injector.config.overrides.resources.max.cpu as null
	count(null_max.refused_overrides) == 1
}

test_resource_annotations_with_a_bad_path_are_not_overrides if {
	d := decide({"example.com/cpu": "1"}) with data.injector.config.resource_annotations as {"example.com/cpu": ["cpu"]}
	d.values == shipped
	d.refused_overrides == []
}

test_quantity_values if {
	overrides.quantity_value("100m") == 0.1
	overrides.quantity_value("4") == 4
	overrides.quantity_value("1Gi") == 1073741824
	overrides.quantity_value("1G") == 1000000000
	overrides.quantity_value("1e3") == 1000
	overrides.quantity_value("500u") < overrides.quantity_value("1m")
	overrides.quantity_value("10n") < overrides.quantity_value("1u")
	overrides.quantity_value(".5") == 0.5
}

# --- excluded ports ----------------------------------------------------------------------------------

test_excluded_inbound_ports_are_added_to_the_defaults if {
	# the template always excludes 15090, 15021 and the status port besides these
	honoured(
		{"traffic.sidecar.istio.io/excludeInboundPorts": "8080, 9090"},
		{"init": {"excludeInboundPorts": "8080,9090"}},
		`pod annotation traffic.sidecar.istio.io/excludeInboundPorts="8080, 9090" adds inbound ports excluded from the redirect`,
	)
}

test_excluded_outbound_ports if {
	honoured(
		{"traffic.sidecar.istio.io/excludeOutboundPorts": "5432,6379"},
		{"init": {"excludeOutboundPorts": "5432,6379"}},
		`pod annotation traffic.sidecar.istio.io/excludeOutboundPorts="5432,6379" adds outbound ports excluded from the redirect`,
	)
	d := decide({"traffic.sidecar.istio.io/excludeOutboundPorts": "5432"}) with data.injector.values.init.excludeOutboundPorts as "25"
	d.values.init.excludeOutboundPorts == "25,5432"
}

test_empty_excluded_ports_add_nothing if {
	honoured(
		{"traffic.sidecar.istio.io/excludeInboundPorts": ""},
		{},
		`pod annotation traffic.sidecar.istio.io/excludeInboundPorts="" adds inbound ports excluded from the redirect`,
	)
}

test_excluded_ports_without_a_default_in_values if {
	d := decide({"traffic.sidecar.istio.io/excludeInboundPorts": "8080"}) with data.injector.values.init.excludeInboundPorts as 15021
	d.values.init.excludeInboundPorts == "8080"
}

test_excluded_ports_that_are_not_ports_are_refused if {
	every key in ["traffic.sidecar.istio.io/excludeInboundPorts", "traffic.sidecar.istio.io/excludeOutboundPorts"] {
		every value in ["*", "0", "65536", "http", "80,,81", "80;81", "-1", "123456"] {
			refused({key: value}, sprintf("pod annotation %s=%q is not a comma-separated list of ports (1-65535)", [key, value]))
		}
	}
}

test_ports if {
	every item in ["1", "80", "08080", "65535"] {
		overrides.port(item)
	}
	every item in ["0", "65536", "", "8o", "1.5", "+80"] {
		not overrides.port(item)
	}
	overrides.list_items(" ") == []
	overrides.list_items(" 80 , 81") == ["80", "81"]
}

# --- redirect ----------------------------------------------------------------------------------------

test_interception_mode if {
	every mode in ["REDIRECT", "TPROXY", "NONE"] {
		honoured(
			{"sidecar.istio.io/interceptionMode": mode},
			{"init": {"interceptionMode": mode}},
			sprintf("pod annotation sidecar.istio.io/interceptionMode=%q sets how traffic is redirected to the proxy", [mode]),
		)
	}
	every mode in ["redirect", "", "TPROXY,NONE"] {
		refused(
			{"sidecar.istio.io/interceptionMode": mode},
			sprintf("pod annotation sidecar.istio.io/interceptionMode=%q is not an interception mode (REDIRECT, TPROXY or NONE)", [mode]),
		)
	}
}

test_included_outbound_ports if {
	honoured(
		{"traffic.sidecar.istio.io/includeOutboundPorts": "443, 8443"},
		{"init": {"includeOutboundPorts": "443,8443"}},
		`pod annotation traffic.sidecar.istio.io/includeOutboundPorts="443, 8443" sets the outbound ports redirected to the proxy whatever their destination`,
	)
	refused(
		{"traffic.sidecar.istio.io/includeOutboundPorts": "*"},
		`pod annotation traffic.sidecar.istio.io/includeOutboundPorts="*" is not a comma-separated list of ports (1-65535)`,
	)
}

test_interfaces if {
	honoured(
		{"traffic.sidecar.istio.io/excludeInterfaces": "eth1, net1"},
		{"init": {"excludeInterfaces": "eth1,net1"}},
		`pod annotation traffic.sidecar.istio.io/excludeInterfaces="eth1, net1" sets the network interfaces whose traffic is not redirected`,
	)
	honoured(
		{"traffic.sidecar.istio.io/kubevirtInterfaces": "k6t-eth0"},
		{"init": {"kubevirtInterfaces": "k6t-eth0"}},
		`pod annotation traffic.sidecar.istio.io/kubevirtInterfaces="k6t-eth0" sets the virtual machine interfaces whose outbound traffic is redirected`,
	)
	every value in ["eth 1", "a-very-long-interface-name", "eth0;rm", "eth0/1"] {
		refused(
			{"traffic.sidecar.istio.io/excludeInterfaces": value},
			sprintf("pod annotation traffic.sidecar.istio.io/excludeInterfaces=%q is not a comma-separated list of network interface names", [value]),
		)
	}
}

test_included_inbound_ports if {
	honoured(
		{"traffic.sidecar.istio.io/includeInboundPorts": "8080,9090"},
		{"init": {"includeInboundPorts": "8080,9090"}},
		`pod annotation traffic.sidecar.istio.io/includeInboundPorts="8080,9090" sets the inbound ports redirected to the proxy`,
	)
	decide({"traffic.sidecar.istio.io/includeInboundPorts": "*"}).values.init.includeInboundPorts == "*"
	decide({"traffic.sidecar.istio.io/includeInboundPorts": ""}).values.init.includeInboundPorts == ""
	refused(
		{"traffic.sidecar.istio.io/includeInboundPorts": "*,80"},
		`pod annotation traffic.sidecar.istio.io/includeInboundPorts="*,80" is neither * nor a comma-separated list of ports (1-65535)`,
	)
}

test_included_outbound_ranges if {
	honoured(
		{"traffic.sidecar.istio.io/includeOutboundIPRanges": "10.0.0.0/8, fd00::/8"},
		{"init": {"includeOutboundIPRanges": "10.0.0.0/8,fd00::/8"}},
		`pod annotation traffic.sidecar.istio.io/includeOutboundIPRanges="10.0.0.0/8, fd00::/8" sets the outbound IP ranges redirected to the proxy`,
	)
	decide({"traffic.sidecar.istio.io/includeOutboundIPRanges": "*"}).values.init.includeOutboundIPRanges == "*"
	refused(
		{"traffic.sidecar.istio.io/includeOutboundIPRanges": "10.0.0.1"},
		`pod annotation traffic.sidecar.istio.io/includeOutboundIPRanges="10.0.0.1" is neither * nor a comma-separated list of IP ranges in CIDR notation`,
	)
}

test_excluded_outbound_ranges if {
	honoured(
		{"traffic.sidecar.istio.io/excludeOutboundIPRanges": "169.254.169.254/32"},
		{"init": {"excludeOutboundIPRanges": "169.254.169.254/32"}},
		`pod annotation traffic.sidecar.istio.io/excludeOutboundIPRanges="169.254.169.254/32" sets the outbound IP ranges excluded from the redirect`,
	)
	refused(
		{"traffic.sidecar.istio.io/excludeOutboundIPRanges": "*"},
		`pod annotation traffic.sidecar.istio.io/excludeOutboundIPRanges="*" is not a comma-separated list of IP ranges in CIDR notation`,
	)
}

# --- subjects ----------------------------------------------------------------------------------------

image := {"sidecar.istio.io/proxyImage": "docker.io/istio/proxyv2:1.29.0"}

not_listed := `pod annotation sidecar.istio.io/proxyImage="docker.io/istio/proxyv2:1.29.0" is reserved to the subjects listed in config overrides.proxy_image.subjects: user "alice", service account team-a/web and namespace team-a are not listed`

may_use_image(subjects) if {
	d := decide(image) with data.injector.config.overrides.proxy_image.subjects as subjects
	d.values.proxy.image == image["sidecar.istio.io/proxyImage"]
	d.refused_overrides == []
}

test_override_for_listed_subjects if {
	may_use_image({"users": ["bob", "alice"]})
	may_use_image({"groups": ["dev"]})
	may_use_image({"serviceAccounts": ["team-a/web"]})
	may_use_image({"namespaces": ["team-a"]})
	may_use_image({"users": ["bob"], "namespaces": ["team-a"]})
}

test_override_without_subjects_is_open if {
	may_use_image({})
	may_use_image({"users": [], "groups": []})
}

test_override_refused_to_other_subjects if {
	every subjects in [
		{"users": ["bob"]},
		{"groups": ["mesh-admins"]},
		{"serviceAccounts": ["team-a/default", "team-b/web"]},
		{"namespaces": ["istio-system"]},
	] {
		refused(image, not_listed) with data.injector.config.overrides.proxy_image.subjects as subjects
	}
}

test_malformed_subjects_allow_nobody if {
	every subjects in [
		["alice"],
		"alice",
		{"user": ["alice"]},
		{"users": "alice"},
		{"users": ["alice"], "groups": "dev"},
	] {
		ignored(image, not_listed) with data.injector.config.overrides.proxy_image.subjects as subjects
	}
}

test_requesting_service_account_is_a_subject if {
	by_deployer := json.patch(pod(image), [{"op": "replace", "path": "/request/userInfo", "value": {"username": "system:serviceaccount:ci:deployer", "groups": []}}])
	d := mutate.decision with input as by_deployer with data.injector.config.overrides.proxy_image.subjects as {"serviceAccounts": ["ci/deployer"]}
	d.refused_overrides == []
}

test_other_overrides_have_their_own_subjects if {
	d := decide({"sidecar.istio.io/logLevel": "debug", "sidecar.istio.io/proxyImage": "docker.io/istio/proxyv2:1.29.0"}) with data.injector.config.overrides.log_level.subjects as {"groups": ["mesh-admins"]}
	d.values.proxy.image == "docker.io/istio/proxyv2:1.29.0"
	d.values.proxy.logLevel == "warning"
	d.refused_overrides[0].reason == `pod annotation sidecar.istio.io/logLevel="debug" is reserved to the subjects listed in config overrides.log_level.subjects: user "alice", service account team-a/web and namespace team-a are not listed`
}

test_every_override_can_be_restricted if {
	every override, annotations in {
		"resources": {"sidecar.istio.io/proxyCPU": "1"},
		"excluded_ports": {"traffic.sidecar.istio.io/excludeOutboundPorts": "25"},
		"redirect": {"traffic.sidecar.istio.io/includeInboundPorts": "*"},
		"variant": {"rego-injector.io/variant": "native"},
	} {
		restricted := object.union(data.injector.config.overrides, {override: {"subjects": {"users": ["bob"]}}})
		d := decide(annotations) with data.injector.config.overrides as restricted
		count(d.refused_overrides) == 1
		d.values == shipped
		d.variant == "sidecar"
	}
}

# --- variants ----------------------------------------------------------------------------------------

gateway := {"rego-injector.io/variant": "gateway"}

test_requestable_variant_is_free if {
	d := decide({"rego-injector.io/variant": "native"})
	d.variant == "native"
	d.refused_overrides == []
}

test_gateway_is_requestable_as_in_istio if {
	d := mutate.decision with input as pod(gateway)
	d.variant == "gateway"
	d.refused_overrides == []
}

test_variant_not_requestable_is_refused if {
	allowed := concat(", ", sort(restricted_variants))
	refused(gateway, sprintf(`pod annotation rego-injector.io/variant="gateway" asks for a variant pods may not request (allowed: %s)`, [allowed]))
	decide(gateway).variant == "sidecar"
}

test_privileged_variant_for_listed_subjects if {
	d := decide(gateway) with data.injector.config.privileged_variants as {"gateway": {"groups": ["dev"]}}
	d.variant == "gateway"
	d.reasons[2] == `pod annotation rego-injector.io/variant="gateway" asks for variant gateway`
	d.refused_overrides == []
}

test_privileged_variant_refused_to_others if {
	reason := `pod annotation rego-injector.io/variant="gateway" asks for variant gateway, which is reserved to the subjects listed in config privileged_variants["gateway"]: user "alice", service account team-a/web and namespace team-a are not listed`
	every subjects in [{"groups": ["mesh-admins"]}, {}, {"users": []}, "dev"] {
		ignored(gateway, reason) with data.injector.config.privileged_variants as {"gateway": subjects}
		denied(gateway, reason) with data.injector.config.privileged_variants as {"gateway": subjects}
	}
}

test_privileged_beats_requestable if {
	d := decide({"rego-injector.io/variant": "native"}) with data.injector.config.privileged_variants as {"native": {"users": ["bob"]}}
	d.variant == "sidecar"
	count(d.refused_overrides) == 1
}

test_privileged_variant_ignores_the_variant_subjects if {
	d := decide(gateway) with data.injector.config.privileged_variants as {"gateway": {"users": ["alice"]}}
		with data.injector.config.overrides.variant.subjects as {"users": ["bob"]}
	d.variant == "gateway"
}

test_variant_subjects_restrict_requestable_variants if {
	refused(
		{"rego-injector.io/variant": "native"},
		`pod annotation rego-injector.io/variant="native" is reserved to the subjects listed in config overrides.variant.subjects: user "alice", service account team-a/web and namespace team-a are not listed`,
	) with data.injector.config.overrides.variant.subjects as {"namespaces": ["istio-system"]}
}

test_variant_request_that_is_not_a_string_is_refused if {
	d := decide({"rego-injector.io/variant": ["native"]})
	d.variant == "sidecar"
	d.refused_overrides[0].value == `["native"]`
}

test_mistyped_privileged_variants_are_none if {
	decide({"rego-injector.io/variant": "native"}).variant == "native" with data.injector.config.privileged_variants as ["native"]
}

# --- refusal mode ------------------------------------------------------------------------------------

bad_image := {"sidecar.istio.io/proxyImage": "evil.example.com/proxy:1"}

test_unknown_refusal_mode_ignores if {
	every mode in ["Deny", "reject", 1, null] {
		d := decide(bad_image) with data.injector.config.overrides.refused as mode
		d.inject == true
		count(d.warnings) == 1
	}
	decide(bad_image).inject == true with data.injector.config.overrides as "deny"
}

test_deny_mode_keeps_allowed_overrides_out_of_the_answer_and_lists_every_refusal if {
	annotations := {
		"sidecar.istio.io/proxyImage": "evil.example.com/proxy:1",
		"sidecar.istio.io/logLevel": "debug",
		"sidecar.istio.io/proxyCPU": "lots",
		"rego-injector.io/variant": "gateway",
	}
	d := decide(annotations) with data.injector.config.overrides.refused as "deny"
	d.inject == false
	[r.annotation | some r in d.refused_overrides] == ["rego-injector.io/variant", "sidecar.istio.io/proxyCPU", "sidecar.istio.io/proxyImage"]
	d.deny == [r.reason | some r in d.refused_overrides]
}

test_deny_mode_keeps_switch_warnings if {
	annotations := object.union(bad_image, {"sidecar.istio.io/inject": "yes"})
	d := decide(annotations) with data.injector.config.overrides.refused as "deny"
	d.warnings == [`pod annotation sidecar.istio.io/inject has invalid value "yes"; expected "true" or "false"; using the default`]
	count(d.deny) == 1
}

test_overrides_of_a_pod_not_injected_are_not_judged if {
	skipped := json.patch(pod(bad_image), [{"op": "replace", "path": "/namespace/labels", "value": {}}])
	d := mutate.decision with input as skipped with data.injector.config.overrides.refused as "deny"
	d.code == "namespace_not_enabled"
	not d.deny
	not d.refused_overrides
	d.warnings == []
}

test_reasons_and_warnings_in_annotation_key_order if {
	d := decide({
		"traffic.sidecar.istio.io/excludeOutboundPorts": "25",
		"sidecar.istio.io/proxyImage": "docker.io/istio/proxyv2:1.29.0",
		"sidecar.istio.io/logLevel": "loud",
		"sidecar.istio.io/proxyCPU": "200m",
		"rego-injector.io/variant": "gateway",
	})
	array.slice(d.reasons, 3, 6) == [
		`pod annotation sidecar.istio.io/proxyCPU="200m" sets proxy requests.cpu`,
		`pod annotation sidecar.istio.io/proxyImage="docker.io/istio/proxyv2:1.29.0" sets the proxy image`,
		`pod annotation traffic.sidecar.istio.io/excludeOutboundPorts="25" adds outbound ports excluded from the redirect`,
	]
	[r.annotation | some r in d.refused_overrides] == ["rego-injector.io/variant", "sidecar.istio.io/logLevel"]
	count(d.warnings) == 2
}

test_decision_is_defined_with_bad_override_config if {
	every config in [
		{"overrides": "deny"},
		{"overrides": {"proxy_image": [], "resources": {"max": []}, "log_level": {"levels": {}}}},
		{"overrides": {"refused": "deny", "resources": {"max": {"cpu": {"a": 1}}}}},
		{"privileged_variants": {"gateway": null}},
	] {
		d := decide({"sidecar.istio.io/proxyImage": "docker.io/istio/proxyv2:1.29.0", "sidecar.istio.io/proxyCPU": "1", "rego-injector.io/variant": "gateway"}) with data.injector.config as object.union(data.injector.config, config)
		is_boolean(d.inject)
		count(d.reasons) > 0
	}
}

# --- honoured overrides --------------------------------------------------------------------------

test_honoured_overrides_say_whether_they_were_reserved if {
	open := decide(image)
	open.honoured_overrides == [{"annotation": "sidecar.istio.io/proxyImage", "value": image["sidecar.istio.io/proxyImage"], "reserved": false}]
	unrestricted := decide(image) with data.injector.config.overrides.proxy_image.subjects as {"users": []}
	unrestricted.honoured_overrides[0].reserved == false
	listed := decide(image) with data.injector.config.overrides.proxy_image.subjects as {"groups": ["dev"]}
	listed.honoured_overrides == [{"annotation": "sidecar.istio.io/proxyImage", "value": image["sidecar.istio.io/proxyImage"], "reserved": true}]
}

test_refused_overrides_are_not_honoured if {
	d := decide(image) with data.injector.config.overrides.proxy_image.subjects as {"users": ["bob"]}
	d.honoured_overrides == []
	count(d.refused_overrides) == 1
}

test_template_lists if {
	d := decide({"inject.istio.io/templates": " sidecar, proxy-only "})
	d.variant == "sidecar"
	d.templates == ["sidecar", "proxy-only"]
	d.reasons[2] == `pod annotation inject.istio.io/templates=" sidecar, proxy-only " asks for templates sidecar, proxy-only, merged in that order`
	one := decide({"inject.istio.io/templates": "native"})
	not one.templates
	refused(
		{"inject.istio.io/templates": "sidecar,gateway"},
		`pod annotation inject.istio.io/templates="sidecar,gateway" asks for a variant pods may not request (allowed: native, proxy-only, sidecar)`,
	)
	refused({"inject.istio.io/templates": " , "}, `pod annotation inject.istio.io/templates=" , " names no template`)
}

test_unknown_templates_refuse_the_pod_as_istio_does if {
	d := decide({"inject.istio.io/templates": "sidecar,nope"})
	d.inject == false
	d.code == "unknown_template"
	d.deny == [`pod annotation inject.istio.io/templates="sidecar,nope" asks for template nope, which this bundle does not have (it has: gateway, grpc-agent, grpc-simple, native, proxy-only, sidecar)`]
}

test_honoured_variants if {
	privileged := decide(gateway) with data.injector.config.privileged_variants as {"gateway": {"groups": ["dev"]}}
	privileged.honoured_overrides == [{"annotation": "rego-injector.io/variant", "value": "gateway", "reserved": true}]
	requestable := decide({"rego-injector.io/variant": "native"})
	requestable.honoured_overrides == [{"annotation": "rego-injector.io/variant", "value": "native", "reserved": false}]
	refused := decide(gateway)
	refused.honoured_overrides == []
}

# --- proxy.istio.io/config ---------------------------------------------------------------------------

test_proxy_config_merged_over_the_mesh_default if {
	config := "concurrency: 4\nholdApplicationUntilProxyStarts: true\nproxyMetadata: {ISTIO_META_DNS_CAPTURE: \"true\"}\nterminationDrainDuration: 30s\n"
	d := decide({"proxy.istio.io/config": config})
	d.values.proxyConfig == {
		"discoveryAddress": "istiod.istio-system.svc:15012",
		"concurrency": 4,
		"holdApplicationUntilProxyStarts": true,
		"terminationDrainDuration": "30s",
		"proxyMetadata": {"ISTIO_META_DNS_CAPTURE": "true"},
	}
	d.warnings == []
	d.reasons[3] == sprintf("pod annotation proxy.istio.io/config=%q sets proxy configuration over the mesh default", [config])
	json_form := decide({"proxy.istio.io/config": `{"proxyStatsMatcher": {"inclusionPrefixes": ["cluster.outbound"]}}`})
	json_form.values.proxyConfig.proxyStatsMatcher == {"inclusionPrefixes": ["cluster.outbound"]}
	json_form.values.proxyConfig.concurrency == 2
}

test_proxy_config_that_cannot_be_used_is_refused if {
	every value, problem in {
		"concurrency: [": "is not YAML or JSON",
		"- 1": "is not a ProxyConfig object",
		"discoveryAddress: evil.example.com:15012": "sets discoveryAddress, which a pod may not set (it may set concurrency, holdApplicationUntilProxyStarts, proxyMetadata, proxyStatsMatcher, terminationDrainDuration)",
		"concurrency: -1": "sets concurrency, which must be a whole number of worker threads (0: one per CPU)",
		"concurrency: 1.5": "sets concurrency, which must be a whole number of worker threads (0: one per CPU)",
		"holdApplicationUntilProxyStarts: \"yes\"": "sets holdApplicationUntilProxyStarts, which must be true or false",
		"proxyMetadata: {\"A B\": x}": "sets proxyMetadata, which must be an object of environment variable names to strings",
		"proxyMetadata: {A: 1}": "sets proxyMetadata, which must be an object of environment variable names to strings",
		"terminationDrainDuration: 5": "sets terminationDrainDuration, which must be a duration such as 5s or 1m30s",
		"proxyStatsMatcher: {inclusionPrefixes: x}": "sets proxyStatsMatcher, which must be an object of inclusionPrefixes, inclusionSuffixes and inclusionRegexps, each a list of strings",
	} {
		refused({"proxy.istio.io/config": value}, sprintf("pod annotation proxy.istio.io/config=%q %s", [value, problem]))
	}
}

test_istio_annotations_without_effect_warn if {
	d := mutate.decision with input as pod({"example.istio.io/later": "x"})
		with overrides.unhonoured as {"example.istio.io/later": "not honoured yet"}
	d.inject == true
	d.warnings == ["pod annotation example.istio.io/later has no effect with this bundle: not honoured yet"]
	decide({}).warnings == []
}

test_reroute_virtual_interfaces if {
	honoured(
		{"istio.io/reroute-virtual-interfaces": "k6t-eth0, net1"},
		{"init": {"rerouteVirtualInterfaces": "k6t-eth0,net1"}},
		`pod annotation istio.io/reroute-virtual-interfaces="k6t-eth0, net1" sets the virtual interfaces whose inbound traffic is rerouted as outbound (it wins over kubevirtInterfaces)`,
	)
}

# --- log levels --------------------------------------------------------------------------------------

test_component_and_agent_log_levels if {
	honoured(
		{"sidecar.istio.io/componentLogLevel": "misc:error, upstream:debug"},
		{"proxy": {"componentLogLevel": "misc:error,upstream:debug"}},
		`pod annotation sidecar.istio.io/componentLogLevel="misc:error, upstream:debug" sets the log levels of Envoy's components`,
	)
	honoured(
		{"sidecar.istio.io/agentLogLevel": "default:debug,ads:info"},
		{"proxy": {"agentLogLevel": "default:debug,ads:info"}},
		`pod annotation sidecar.istio.io/agentLogLevel="default:debug,ads:info" sets the log levels of the agent and of istio-iptables`,
	)
	decide({"sidecar.istio.io/agentLogLevel": "debug"}).values.proxy.agentLogLevel == "debug"
	every value in ["misc", "misc:loud", "", "misc:error;x"] {
		refused(
			{"sidecar.istio.io/componentLogLevel": value},
			sprintf("pod annotation sidecar.istio.io/componentLogLevel=%q is not a comma-separated list of component:level (levels: trace, debug, info, warning, error, critical, off)", [value]),
		)
	}
	refused(
		{"sidecar.istio.io/agentLogLevel": "default:verbose"},
		`pod annotation sidecar.istio.io/agentLogLevel="default:verbose" is not a comma-separated list of [scope:]level (levels: debug, info, warn, error, fatal, none)`,
	)
}

test_proxy_image_type if {
	every value in ["distroless", "debug", "default"] {
		honoured(
			{"sidecar.istio.io/proxyImageType": value},
			{"proxy": {"imageType": value}},
			sprintf("pod annotation sidecar.istio.io/proxyImageType=%q sets the proxy image's type (the suffix of its tag)", [value]),
		)
	}
	refused(
		{"sidecar.istio.io/proxyImageType": "Debug;x"},
		`pod annotation sidecar.istio.io/proxyImageType="Debug;x" is not an image type (default, distroless, debug or another lower-case name)`,
	)
}

# --- user volumes and bootstrap ----------------------------------------------------------------------

test_user_volumes_and_mounts if {
	annotations := {
		"sidecar.istio.io/userVolume": `{"certs": {"secret": {"secretName": "web-certs"}}}`,
		"sidecar.istio.io/userVolumeMount": `{"certs": {"mountPath": "/etc/certs", "readOnly": true}}`,
	}
	d := decide(annotations)
	d.values.proxy.userVolumes == {"certs": {"secret": {"secretName": "web-certs"}}}
	d.values.proxy.userVolumeMounts == {"certs": {"mountPath": "/etc/certs", "readOnly": true}}
	d.warnings == []

	# a volume of the pod's own may be mounted too
	own := mutate.decision with input as object.union(pod({"sidecar.istio.io/userVolumeMount": `{"data": {"mountPath": "/data"}}`}), {"object": {"spec": {"volumes": [{"name": "data", "emptyDir": {}}]}}})
	own.values.proxy.userVolumeMounts == {"data": {"mountPath": "/data"}}
}

test_user_volumes_that_cannot_be_used_are_refused if {
	every value, problem in {
		"{": "is not JSON",
		"[]": "is not a JSON object of volume names to their specs",
		`{"Bad_Name": {"emptyDir": {}}}`: "is not a JSON object of volume names to their specs",
		`{"node": {"hostPath": {"path": "/"}}}`: "adds volume node, whose source is not one of configMap, csi, downwardAPI, emptyDir, ephemeral, persistentVolumeClaim, projected, secret",
		`{"two": {"emptyDir": {}, "secret": {}}}`: "adds volume two, whose source is not one of configMap, csi, downwardAPI, emptyDir, ephemeral, persistentVolumeClaim, projected, secret",
		`{"istio-envoy": {"emptyDir": {}}}`: "adds volume istio-envoy, a name the sidecar or the pod already uses",
	} {
		refused({"sidecar.istio.io/userVolume": value}, sprintf("pod annotation sidecar.istio.io/userVolume=%q %s", [value, problem]))
	}
	every value, problem in {
		`{"certs": {"mountPath": "etc"}}`: "mounts certs with fields a volume mount into the proxy may not set or without a mountPath (allowed: mountPath, mountPropagation, readOnly, subPath, subPathExpr)",
		`{"certs": {"mountPath": "/etc", "name": "x"}}`: "mounts certs with fields a volume mount into the proxy may not set or without a mountPath (allowed: mountPath, mountPropagation, readOnly, subPath, subPathExpr)",
		`{"nowhere": {"mountPath": "/x"}}`: "mounts nowhere, which is neither a volume of the pod nor one of sidecar.istio.io/userVolume",
	} {
		refused({"sidecar.istio.io/userVolumeMount": value}, sprintf("pod annotation sidecar.istio.io/userVolumeMount=%q %s", [value, problem]))
	}
}

test_bootstrap_override if {
	honoured(
		{"sidecar.istio.io/bootstrapOverride": "web-bootstrap"},
		{"proxy": {"bootstrapConfigMap": "web-bootstrap"}},
		`pod annotation sidecar.istio.io/bootstrapOverride="web-bootstrap" gives the proxy a custom Envoy bootstrap from that ConfigMap`,
	)
	refused({"sidecar.istio.io/bootstrapOverride": "Web Bootstrap"}, `pod annotation sidecar.istio.io/bootstrapOverride="Web Bootstrap" is not a ConfigMap name`)
}

test_cap_net_bind_service if {
	honoured(
		{"sidecar.istio.io/capNetBindService": "true"},
		{"proxy": {"capNetBindService": true}},
		`pod annotation sidecar.istio.io/capNetBindService="true" sets whether the proxy may bind ports below 1024 (NET_BIND_SERVICE)`,
	)
	refused({"sidecar.istio.io/capNetBindService": "yes"}, `pod annotation sidecar.istio.io/capNetBindService="yes" is not true or false`)
}

test_template_aliases if {
	d := decide({"inject.istio.io/templates": "mesh"}) with data.injector.config.template_aliases as {"mesh": ["sidecar", "proxy-only"]}
	d.variant == "sidecar"
	d.templates == ["sidecar", "proxy-only"]
	bad := decide({"inject.istio.io/templates": "mesh"}) with data.injector.config.template_aliases as {"mesh": "sidecar"}
	bad.deny == [`pod annotation inject.istio.io/templates="mesh" asks for template mesh, which this bundle does not have (it has: gateway, grpc-agent, grpc-simple, native, proxy-only, sidecar)`]
}
