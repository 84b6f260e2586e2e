# Metrics merging, as Istio's enablePrometheusMerge: the pod's prometheus.io/scrape, port and path
# annotations are pointed at the agent (port 15020, /stats/prometheus), which serves the proxy's
# metrics and the app's, read from the pod's own annotations (ISTIO_PROMETHEUS_ANNOTATIONS). The
# bundle's values.prometheus.merge decides; prometheus.istio.io/merge-metrics overrides it per pod,
# and a pod whose prometheus.io/scrape is false is left as it is.
package injector.prometheus

import data.injector.lib

merge_annotation := "prometheus.istio.io/merge-metrics"

bundle_merge := v if {
	v := lib.values.prometheus.merge
	is_boolean(v)
} else := true

# METADATA
# title: Whether metrics are merged
# description: >-
#   Not for a pod that turns scraping off; else the annotation when it reads as a boolean, else
#   the bundle's setting.
merge := false if {
	scrape_off
} else := lib.parse_bool[lib.pod_annotations[merge_annotation]] if {
	is_boolean(lib.parse_bool[lib.pod_annotations[merge_annotation]])
} else := bundle_merge

# The pod turns scraping off: prometheus.io/scrape, or a key Prometheus reads as the same label
# (prometheus-io/scrape, ...), read as a boolean is false.
scrape_off if {
	some key, raw in lib.pod_annotations
	regex.replace(key, `[^a-zA-Z0-9_]`, "_") == "prometheus_io_scrape"
	value := lib.parse_bool[raw]
	value == false
}

# METADATA
# title: Metrics values
# description: values.prometheus of the decision, {"merge"}.
values := {"prometheus": {"merge": merge}}

reasons contains "the pod turns prometheus.io/scrape off: metrics are not merged" if {
	scrape_off
}

reasons contains sprintf("pod annotation %s=%q turns metrics merging %s", [merge_annotation, raw, lib.on_off(lib.parse_bool[raw])]) if {
	raw := lib.pod_annotations[merge_annotation]
	not scrape_off
	is_boolean(lib.parse_bool[raw])
}

warnings contains sprintf("pod annotation %s=%s is not a boolean (true, false, 1, 0, t, f); metrics merging stays %s", [merge_annotation, json.marshal(raw), lib.on_off(bundle_merge)]) if {
	raw := lib.pod_annotations[merge_annotation]
	not boolean_text(raw)
}

boolean_text(raw) if is_boolean(lib.parse_bool[raw])
