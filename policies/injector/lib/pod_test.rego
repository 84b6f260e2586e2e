# Tests for the facts read from the admission input.
package injector.lib_test

import data.injector.lib

pod_with(metadata) := {"object": {"kind": "Pod", "metadata": metadata}}

test_operation if {
	lib.operation == "CREATE" with input as {"request": {"operation": "CREATE"}}
	lib.creating with input as {"request": {"operation": "CREATE"}}
	lib.operation == "" with input as {}
	lib.operation == "" with input as {"request": {"operation": 3}}
	not lib.creating with input as {"request": {"operation": "UPDATE"}}
}

test_is_pod if {
	lib.is_pod with input as {"object": {"kind": "Pod"}}
	lib.is_pod with input as {"request": {"kind": {"kind": "Pod"}}}
	not lib.is_pod with input as {"object": {"kind": "Deployment"}, "request": {"kind": {"kind": "Deployment"}}}
	not lib.is_pod with input as {}
}

test_injector_facts if {
	lib.revision == "r1" with input as {"injector": {"revision": "r1"}}
	lib.revision == "" with input as {}
	lib.injector_namespace == "mesh" with input as {"injector": {"namespace": "mesh"}}
	lib.injector_namespace == "" with input as {"injector": null}
}

test_namespace_name_falls_back if {
	lib.namespace_name == "a" with input as {"namespace": {"name": "a"}, "request": {"namespace": "b"}}
	lib.namespace_name == "b" with input as {"namespace": {"name": ""}, "request": {"namespace": "b"}}
	lib.namespace_name == "c" with input as {"request": {"namespace": ""}, "object": {"metadata": {"namespace": "c"}}}
	lib.namespace_name == "" with input as {}
}

test_maps_cope_with_absent_and_null if {
	lib.namespace_labels == {} with input as {"namespace": {"labels": null}}
	lib.pod_labels == {} with input as {"object": null}
	lib.pod_annotations == {} with input as {}
	lib.pod_labels == {"app": "web"} with input as pod_with({"labels": {"app": "web"}})
	lib.pod_annotations == {"a": "b"} with input as pod_with({"annotations": {"a": "b"}})
	lib.namespace_labels == {"x": "y"} with input as {"namespace": {"labels": {"x": "y"}}}
}

test_pod_description if {
	lib.pod_description == `pod "web-1"` with input as pod_with({"name": "web-1", "generateName": "web-"})
	lib.pod_description == `pod "web-" (generateName)` with input as pod_with({"name": "", "generateName": "web-"})
	lib.pod_description == `pod "from-request"` with input as {"request": {"name": "from-request"}, "object": {}}
	lib.pod_description == "unnamed pod" with input as {}
	lib.pod_description == "the pod of Deployment/web" with input as {"owner": {"kind": "Deployment", "name": "web"}}
	lib.pod_description == "unnamed pod" with input as {"owner": {"kind": "Deployment", "name": ""}}
}

test_containers if {
	spec := {
		"containers": [{"name": "app"}, "garbage", {"name": "istio-proxy"}],
		"initContainers": [{"name": "istio-init"}],
	}
	lib.containers == [{"name": "app"}, {"name": "istio-proxy"}] with input as {"object": {"spec": spec}}
	lib.init_containers == [{"name": "istio-init"}] with input as {"object": {"spec": spec}}
	lib.container_names == {"app", "istio-proxy", "istio-init"} with input as {"object": {"spec": spec}}
	lib.has_proxy with input as {"object": {"spec": spec}}
	lib.has_proxy with input as {"object": {"spec": {"initContainers": [{"name": "istio-proxy"}]}}}
	not lib.has_proxy with input as {"object": {"spec": {"containers": "app"}}}
	lib.containers == [] with input as {}
}

test_host_network if {
	lib.host_network with input as {"object": {"spec": {"hostNetwork": true}}}
	not lib.host_network with input as {"object": {"spec": {"hostNetwork": "true"}}}
	not lib.host_network with input as {}
}

test_namespace_switch_first_key_decides if {
	both := {"namespace": {"labels": {"rego-injector.io/inject": "enabled", "istio-injection": "disabled"}}}
	lib.namespace_switch == {"key": "istio-injection", "value": "disabled"} with input as both
	lib.namespace_disabled with input as both
	not lib.namespace_enabled with input as both
	second := {"namespace": {"labels": {"rego-injector.io/inject": "enabled"}}}
	lib.namespace_switch == {"key": "rego-injector.io/inject", "value": "enabled"} with input as second
	lib.namespace_enabled with input as second
	not lib.namespace_switch with input as {"namespace": {"labels": {"team": "a"}}}
}

test_pod_switch_label_beats_annotation if {
	pod := pod_with({
		"labels": {"sidecar.istio.io/inject": "false"},
		"annotations": {"sidecar.istio.io/inject": "true"},
	})
	lib.pod_switch == {"kind": "label", "key": "sidecar.istio.io/inject", "value": "false"} with input as pod
	lib.opted_out with input as pod
	not lib.opted_in with input as pod
	lib.switch_warnings == [`pod annotation sidecar.istio.io/inject="true" is overridden by pod label sidecar.istio.io/inject="false"`] with input as pod
}

test_pod_switch_first_key_beats_second if {
	pod := pod_with({"labels": {"rego-injector.io/inject": "false", "sidecar.istio.io/inject": "true"}})
	lib.pod_switch.key == "sidecar.istio.io/inject" with input as pod
	lib.opted_in with input as pod
}

test_pod_switch_agreeing_switches_do_not_warn if {
	pod := pod_with({
		"labels": {"sidecar.istio.io/inject": "true"},
		"annotations": {"rego-injector.io/inject": "true"},
	})
	lib.opted_in with input as pod
	lib.switch_warnings == [] with input as pod
}

test_pod_switch_invalid_values_are_ignored if {
	invalid := pod_with({"labels": {"sidecar.istio.io/inject": "yes"}})
	not lib.pod_switch with input as invalid
	lib.switch_warnings == [`pod label sidecar.istio.io/inject has invalid value "yes"; expected "true" or "false"; using the default`] with input as invalid

	fallback := pod_with({
		"labels": {"sidecar.istio.io/inject": "True"},
		"annotations": {"sidecar.istio.io/inject": "false"},
	})
	lib.opted_out with input as fallback
	lib.switch_warnings == [`pod label sidecar.istio.io/inject has invalid value "True"; expected "true" or "false"; using pod annotation sidecar.istio.io/inject="false" instead`] with input as fallback
}

test_pod_switch_absent if {
	not lib.pod_switch with input as {}
	lib.pod_switches == [] with input as {}
	lib.switch_warnings == [] with input as {}
}

test_status_parsing if {
	good := pod_with({"annotations": {"rego-injector.io/status": `{"revision":"r1","containers":["istio-proxy"]}`}})
	lib.status == {"revision": "r1", "containers": ["istio-proxy"]} with input as good
	not lib.status_invalid with input as good

	not lib.status with input as {}
	not lib.status_invalid with input as {}

	full := `{"revision":"r1","variant":"sidecar","containers":null,"reasons":["x"],"replaced":{"containers":{"istio-proxy":{"name":"istio-proxy"}}},"requester":{"username":"alice","groups":["g"]},"reserved":["a"],"rewritten":{"containers":{"app":{"readinessProbe":{"tcpSocket":{"port":80}},"livenessProbe":null}}}}`
	lib.status.variant == "sidecar" with input as pod_with({"annotations": {"rego-injector.io/status": full}})

	every raw in [
		`{"revision":`, "{}", `{"revision": 1}`, `"r1"`, "[]",
		`{"revision":"r1","containers":"istio-proxy"}`, `{"revision":"r1","volumes":[1]}`,
		`{"revision":"r1","variant":7}`, `{"revision":"r1","replaced":[]}`,
		`{"revision":"r1","replaced":{"containers":["istio-proxy"]}}`,
		`{"revision":"r1","replaced":{"containers":{"istio-proxy":1}}}`,
		`{"revision":"r1","requester":"alice"}`, `{"revision":"r1","requester":{"username":1}}`,
		`{"revision":"r1","requester":{"username":"a","groups":"g"}}`, `{"revision":"r1","reserved":[1]}`,
		`{"revision":"r1","rewritten":[]}`, `{"revision":"r1","rewritten":{"other":{}}}`,
		`{"revision":"r1","rewritten":{"containers":{"app":1}}}`,
		`{"revision":"r1","rewritten":{"containers":{"app":{"exec":{}}}}}`,
		`{"revision":"r1","rewritten":{"containers":{"app":{"readinessProbe":"x"}}}}`,
		`{"revision":"r1","rewrittenAnnotations":[]}`, `{"revision":"r1","rewrittenAnnotations":{"a":1}}`,
	] {
		not lib.status with input as pod_with({"annotations": {"rego-injector.io/status": raw}})
		lib.status_invalid with input as pod_with({"annotations": {"rego-injector.io/status": raw}})
	}
}

test_istio_injected if {
	lib.istio_injected with input as pod_with({"annotations": {"sidecar.istio.io/status": "{}"}})
	not lib.istio_injected with input as pod_with({"annotations": {}})
}

test_owner_from_input_first if {
	pod := {
		"owner": {"apiVersion": "batch/v1", "kind": "CronJob", "name": "nightly"},
		"object": {"metadata": {"ownerReferences": [{"kind": "Job", "name": "nightly-1", "controller": true}]}},
	}
	lib.owner.kind == "CronJob" with input as pod
	lib.owner_string == "CronJob/nightly" with input as pod
}

test_owner_from_controller_reference if {
	pod := {"object": {"metadata": {"ownerReferences": [
		{"kind": "ConfigMap", "name": "not-a-controller"},
		{"kind": "Job", "name": "migrate", "controller": true},
	]}}}
	lib.owner.name == "migrate" with input as pod
	lib.owner_string == "Job/migrate" with input as pod
}

test_owner_without_name if {
	lib.owner_string == "Job" with input as {"owner": {"kind": "Job"}}
}

test_bare_pod_has_no_owner if {
	not lib.owner with input as {"object": {"metadata": {"ownerReferences": [{"kind": "Job", "name": "x"}]}}}
	not lib.owner with input as {"owner": {"kind": null}}
	not lib.owner_string with input as {}
}

test_missing_sidecar_explanation if {
	lib.missing_sidecar_explanation == `; it opted out with pod label sidecar.istio.io/inject="false"` with input as pod_with({"labels": {"sidecar.istio.io/inject": "false"}})
	lib.missing_sidecar_explanation == "; it uses hostNetwork, which is never injected" with input as {"object": {"spec": {"hostNetwork": true}}}
	lib.missing_sidecar_explanation == "" with input as {}
}
