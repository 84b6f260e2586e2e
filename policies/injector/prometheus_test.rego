# Tests for metrics merging, against the shipped values.
package injector.prometheus_test

import data.injector.prometheus

pod(annotations) := {
	"request": {"kind": {"kind": "Pod"}, "operation": "CREATE", "namespace": "team-a"},
	"object": {"kind": "Pod", "metadata": {"name": "web-1", "annotations": annotations}, "spec": {"containers": [{"name": "app"}]}},
	"namespace": {"name": "team-a", "labels": {"istio-injection": "enabled"}},
}

test_merged_by_default if {
	prometheus.values == {"prometheus": {"merge": true}} with input as pod({})
	prometheus.merge == false with input as pod({}) with data.injector.values.prometheus.merge as false
	prometheus.merge == true with input as pod({}) with data.injector.values.prometheus.merge as "no"
	count(prometheus.reasons) == 0 with input as pod({})
}

test_scrape_false_is_left_alone if {
	every raw in ["false", "0", "False"] {
		prometheus.merge == false with input as pod({"prometheus.io/scrape": raw, "prometheus.istio.io/merge-metrics": "true"})
	}
	prometheus.reasons == {"the pod turns prometheus.io/scrape off: metrics are not merged"} with input as pod({"prometheus.io/scrape": "false"})
	prometheus.merge == false with input as pod({"prometheus-io/scrape": "false"})
	prometheus.merge == true with input as pod({"prometheus.io/scrape": "true"})
}

test_merge_annotation if {
	prometheus.merge == false with input as pod({"prometheus.istio.io/merge-metrics": "false"})
	prometheus.reasons == {`pod annotation prometheus.istio.io/merge-metrics="false" turns metrics merging off`} with input as pod({"prometheus.istio.io/merge-metrics": "false"})
	prometheus.merge == true with input as pod({"prometheus.istio.io/merge-metrics": "1"}) with data.injector.values.prometheus.merge as false
	prometheus.warnings == {`pod annotation prometheus.istio.io/merge-metrics="maybe" is not a boolean (true, false, 1, 0, t, f); metrics merging stays on`} with input as pod({"prometheus.istio.io/merge-metrics": "maybe"})
	prometheus.merge == true with input as pod({"prometheus.istio.io/merge-metrics": "maybe"})
}
