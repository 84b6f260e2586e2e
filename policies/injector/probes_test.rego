# Tests for probe rewriting, against the shipped values.
package injector.probes_test

import data.injector.probes

pod(annotations) := {
	"request": {"kind": {"kind": "Pod"}, "operation": "CREATE", "namespace": "team-a"},
	"object": {"kind": "Pod", "metadata": {"name": "web-1", "annotations": annotations}, "spec": {"containers": [{"name": "app"}]}},
	"namespace": {"name": "team-a", "labels": {"istio-injection": "enabled"}},
}

test_rewriting_is_on_by_default if {
	probes.values == {"probes": {"rewrite": true, "port": 15020}, "proxy": {"readiness": {}}} with input as pod({})
	count(probes.reasons) == 0 with input as pod({})
	count(probes.warnings) == 0 with input as pod({})
}

test_bundle_setting if {
	probes.values.probes == {"rewrite": false, "port": 15020} with input as pod({}) with data.injector.values.probes.rewrite as false
	probes.values.probes == {"rewrite": true, "port": 15020} with input as pod({}) with data.injector.values.probes.rewrite as "no"
	probes.port == 15025 with input as pod({}) with data.injector.values.probes.port as 15025
}

test_annotation_reads_as_go_booleans if {
	every raw in ["false", "0", "f", "F", "FALSE", "False"] {
		probes.rewrite == false with input as pod({"sidecar.istio.io/rewriteAppHTTPProbers": raw})
	}
	every raw in ["true", "1", "t", "T", "TRUE", "True"] {
		probes.rewrite == true with input as pod({"sidecar.istio.io/rewriteAppHTTPProbers": raw}) with data.injector.values.probes.rewrite as false
	}
	probes.reasons == {`pod annotation sidecar.istio.io/rewriteAppHTTPProbers="false" turns probe rewriting off`} with input as pod({"sidecar.istio.io/rewriteAppHTTPProbers": "false"})
}

test_annotation_that_is_not_a_boolean_is_a_warning if {
	every raw in ["yes", "", "on", 1] {
		probes.rewrite == true with input as pod({"sidecar.istio.io/rewriteAppHTTPProbers": raw})
		count(probes.warnings) == 1 with input as pod({"sidecar.istio.io/rewriteAppHTTPProbers": raw})
	}
	probes.warnings == {`pod annotation sidecar.istio.io/rewriteAppHTTPProbers="yes" is not a boolean (true, false, 1, 0, t, f); probe rewriting stays on`} with input as pod({"sidecar.istio.io/rewriteAppHTTPProbers": "yes"})
}

test_status_port_annotation if {
	probes.values.probes == {"rewrite": true, "port": 15030} with input as pod({"status.sidecar.istio.io/port": " 15030 "})
	probes.reasons == {`pod annotation status.sidecar.istio.io/port=" 15030 ": the agent's status port is 15030`} with input as pod({"status.sidecar.istio.io/port": " 15030 "})
}

test_status_port_zero_turns_rewriting_off if {
	annotations := {"status.sidecar.istio.io/port": "0", "sidecar.istio.io/rewriteAppHTTPProbers": "true"}
	probes.values.probes == {"rewrite": false, "port": 0} with input as pod(annotations)
	probes.reasons == {`pod annotation status.sidecar.istio.io/port="0" turns the agent's status port off: the app's probes are not rewritten, and the proxy has no readiness or startup probe`} with input as pod(annotations)
}

test_bad_status_ports_are_warnings if {
	every raw in ["15o20", "65536", "-1", "", "15020,15021", 15020] {
		probes.port == 15020 with input as pod({"status.sidecar.istio.io/port": raw})
		count(probes.warnings) == 1 with input as pod({"status.sidecar.istio.io/port": raw})
	}
}

test_readiness_annotations if {
	annotations := {
		"readiness.status.sidecar.istio.io/initialDelaySeconds": "0",
		"readiness.status.sidecar.istio.io/periodSeconds": "5",
		"readiness.status.sidecar.istio.io/failureThreshold": "10",
	}
	probes.values.proxy.readiness == {"initialDelaySeconds": 0, "periodSeconds": 5, "failureThreshold": 10} with input as pod(annotations)
	probes.reasons == {
		`pod annotation readiness.status.sidecar.istio.io/initialDelaySeconds="0" sets the proxy's readiness probe initialDelaySeconds`,
		`pod annotation readiness.status.sidecar.istio.io/periodSeconds="5" sets the proxy's readiness probe periodSeconds`,
		`pod annotation readiness.status.sidecar.istio.io/failureThreshold="10" sets the proxy's readiness probe failureThreshold`,
	} with input as pod(annotations)
}

test_bad_readiness_annotations_are_warnings if {
	every raw in ["0", "-1", "1.5", "2147483648", "ten", ""] {
		probes.values.proxy.readiness == {} with input as pod({"readiness.status.sidecar.istio.io/periodSeconds": raw})
		count(probes.warnings) == 1 with input as pod({"readiness.status.sidecar.istio.io/periodSeconds": raw})
	}
	probes.warnings == {`pod annotation readiness.status.sidecar.istio.io/failureThreshold="0" is not a whole number of at least 1; the proxy's readiness probe keeps its failureThreshold`} with input as pod({"readiness.status.sidecar.istio.io/failureThreshold": "0"})
}
