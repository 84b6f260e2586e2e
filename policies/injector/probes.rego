# Probe rewriting, as Istio's rewriteAppHTTPProbe: the app's HTTP, TCP and gRPC probes go through
# the proxy's agent, which probes the app on the kubelet's behalf (the kubelet's own probes would be
# refused by mutual TLS or captured by the redirect). Whether, and on which agent port, comes from
# the bundle's values.probes; a pod's annotations sidecar.istio.io/rewriteAppHTTPProbers and
# status.sidecar.istio.io/port override them. The templates do the rewriting (probeRewrites,
# appProbers).
package injector.probes

import data.injector.lib

rewrite_annotation := "sidecar.istio.io/rewriteAppHTTPProbers"

port_annotation := "status.sidecar.istio.io/port"

bundle_rewrite := v if {
	v := lib.values.probes.rewrite
	is_boolean(v)
} else := true

bundle_port := p if {
	p := lib.values.probes.port
	is_number(p)
} else := 15020

# The pod's status port annotation, when it is a port number 0-65535 (Istio's validation).
annotated_port := to_number(trim_space(raw)) if {
	raw := lib.pod_annotations[port_annotation]
	is_string(raw)
	regex.match(`^\s*[0-9]{1,5}\s*$`, raw)
	to_number(trim_space(raw)) <= 65535
}

# The agent's status port the rewritten probes call.
port := annotated_port if {
	is_number(annotated_port)
} else := bundle_port

# METADATA
# title: Whether the app's probes are rewritten
# description: >-
#   The annotation when it reads as a boolean, else the bundle's setting; never with a status port
#   of 0, which would send the probes nowhere (Istio has no such guard: its pod would be refused).
rewrite := false if {
	annotated_port == 0
} else := lib.parse_bool[lib.pod_annotations[rewrite_annotation]] if {
	is_string(lib.pod_annotations[rewrite_annotation])
} else := bundle_rewrite

# The proxy's own readiness probe, as Istio's readiness.status.sidecar.istio.io annotations set it:
# annotation to the probe field and its least value (a probe with a period or threshold of 0 is
# a pod the apiserver refuses).
readiness_annotations := {
	"readiness.status.sidecar.istio.io/initialDelaySeconds": {"field": "initialDelaySeconds", "least": 0},
	"readiness.status.sidecar.istio.io/periodSeconds": {"field": "periodSeconds", "least": 1},
	"readiness.status.sidecar.istio.io/failureThreshold": {"field": "failureThreshold", "least": 1},
}

# The readiness fields the pod's annotations set: whole numbers from least to 2^31-1.
readiness[setting.field] := to_number(raw) if {
	some key, setting in readiness_annotations
	raw := lib.pod_annotations[key]
	is_string(raw)
	regex.match(`^[0-9]{1,10}$`, raw)
	to_number(raw) >= setting.least
	to_number(raw) <= 2147483647
}

# METADATA
# title: Probe values
# description: >-
#   values.probes of the decision, {"rewrite", "port"}, and the proxy's readiness probe fields the
#   pod's annotations set (values.proxy.readiness).
values := {"probes": {"rewrite": rewrite, "port": port}, "proxy": {"readiness": readiness}}

reasons contains sprintf("pod annotation %s=%q turns probe rewriting %s", [rewrite_annotation, raw, lib.on_off(value)]) if {
	raw := lib.pod_annotations[rewrite_annotation]
	value := lib.parse_bool[raw]
	not annotated_port == 0
}

reasons contains sprintf("pod annotation %s=%q: the agent's status port is %d", [port_annotation, lib.pod_annotations[port_annotation], annotated_port]) if {
	annotated_port > 0
}

reasons contains sprintf("pod annotation %s=\"0\" turns the agent's status port off: the app's probes are not rewritten, and the proxy has no readiness or startup probe", [port_annotation]) if {
	annotated_port == 0
}

warnings contains sprintf("pod annotation %s=%s is not a boolean (true, false, 1, 0, t, f); probe rewriting stays %s", [rewrite_annotation, json.marshal(raw), lib.on_off(bundle_rewrite)]) if {
	raw := lib.pod_annotations[rewrite_annotation]
	not lib.parse_bool[raw]
	not lib.parse_bool[raw] == false
}

warnings contains sprintf("pod annotation %s=%s is not a port number (0-65535); the agent's status port stays %d", [port_annotation, json.marshal(raw), bundle_port]) if {
	raw := lib.pod_annotations[port_annotation]
	not annotated_port
}

reasons contains sprintf("pod annotation %s=%q sets the proxy's readiness probe %s", [key, lib.pod_annotations[key], setting.field]) if {
	some key, setting in readiness_annotations
	readiness[setting.field]
}

warnings contains sprintf("pod annotation %s=%s is not a whole number of at least %d; the proxy's readiness probe keeps its %s", [key, json.marshal(raw), setting.least, setting.field]) if {
	some key, setting in readiness_annotations
	raw := lib.pod_annotations[key]
	not readiness[setting.field]
}
