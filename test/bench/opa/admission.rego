# The peer for the load harness: OPA's own server answering the same AdmissionReview as
# rego-injector, with the same default policies deciding, and the sidecar variant built as a JSON
# patch in Rego (the way kube-mgmt-style policies do it) instead of rendered from a Go template.
# Served with `opa run --server --set default_decision=bench/admission/review`; the harness checks
# that both patches give the same pod before it measures.
#
# It builds what the default bundle's sidecar variant builds: istio-init and istio-proxy (a native
# sidecar first among the init containers, or the classic placement), the app's probes rewritten
# through the agent, the mesh labels and annotations, the volumes. Other variants, several
# templates, and pods that declare their own istio-proxy or istio-init are admitted unchanged.
package bench.admission

import data.injector.mutate

# The revision rego-injector serves the default bundle as (bundles/default/.manifest); OPA's server
# loads the bundle's files as plain data and policies, without the manifest.
revision := "default-1"

pod := input.request.object

pod_labels := object.get(pod.metadata, "labels", {})

pod_annotations := object.get(pod.metadata, "annotations", {})

# The policy input rego-injector builds, from the review. The harness's pods opt in by label, and
# the injector runs without a cluster, so the namespace has no labels.
policy_input := object.union(
	{
		"request": object.remove(input.request, ["object", "oldObject"]),
		"object": pod,
		"namespace": {"name": input.request.namespace, "labels": {}, "annotations": {}},
		"injector": {"revision": revision, "namespace": ""},
	},
	{"owner": owner | owner},
)

decision := d if {
	d := mutate.decision with input as policy_input
}

review := {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": answer}

answer := {
	"uid": input.request.uid,
	"allowed": true,
	"patchType": "JSONPatch",
	"patch": base64.encode(json.marshal(patch)),
} if {
	decision.inject
	decision.variant == "sidecar"
	not decision.templates
	not declares_own_containers
} else := {"uid": input.request.uid, "allowed": true}

declares_own_containers if {
	some list in ["initContainers", "containers"]
	some container in object.get(pod.spec, list, [])
	container.name in {values.proxy.name, values.init.name}
}

values := decision.values

# Undefined, and the pod admitted unchanged, when any part is: never a partial sidecar.
patch := array.concat(
	array.concat(metadata_ops, probe_ops),
	array.concat(array.concat(init_container_ops, container_ops), volume_ops),
)

# The pod's top controller: its controlling owner reference, a ReplicaSet lifted to the Deployment
# whose pod-template-hash ends its name.
owner := {"apiVersion": "apps/v1", "kind": "Deployment", "name": trim_suffix(ref.name, suffix)} if {
	ref := controller_ref
	ref.kind == "ReplicaSet"
	hash := pod_labels["pod-template-hash"]
	hash != ""
	suffix := concat("", ["-", hash])
	endswith(ref.name, suffix)
} else := {"apiVersion": object.get(ref, "apiVersion", ""), "kind": object.get(ref, "kind", ""), "name": object.get(ref, "name", "")} if {
	ref := controller_ref
}

controller_ref := refs[0] if {
	refs := [ref | some ref in pod.metadata.ownerReferences; ref.controller == true]
}

workload_name := pod_labels["service.istio.io/workload-name"] if {
	pod_labels["service.istio.io/workload-name"] != ""
} else := owner.name if {
	owner
} else := pod.metadata.name if {
	pod.metadata.name != ""
} else := trim_suffix(object.get(pod.metadata, "generateName", ""), "-")

# Metadata: the pod's own labels and annotations win.

canonical_name := trim_suffix(substring(name, 0, 63), "-") if {
	name := object.get(pod_labels, "app.kubernetes.io/name", object.get(pod_labels, "app", ""))
	name != ""
} else := trim_suffix(substring(workload_name, 0, 63), "-")

added_labels := object.union(
	{
		"security.istio.io/tlsMode": "istio",
		"service.istio.io/canonical-revision": object.get(pod_labels, "app.kubernetes.io/version", object.get(pod_labels, "version", "latest")),
	},
	{"service.istio.io/canonical-name": canonical_name | canonical_name != ""},
)

# kubectl logs and exec land in the first app container, not the proxy.
app_containers := [container.name | some container in pod.spec.containers; container.name != values.proxy.name]

added_annotations := object.union(
	{key: app_containers[0] |
		count(app_containers) > 0
		some key in ["kubectl.kubernetes.io/default-container", "kubectl.kubernetes.io/default-logs-container"]
	},
	{"istio.io/rev": values.revisionName, "sidecar.istio.io/status": istio_status},
)

# Istio's own status annotation, as the templates write it.
istio_status := json.marshal({
	"initContainers": array.concat([values.init.name | redirects], [values.proxy.name | native]),
	"containers": [values.proxy.name | not native],
	"volumes": [volume.name | some volume in volumes],
	"imagePullSecrets": null,
	"revision": values.revisionName,
})

# Metrics merging: the scrape annotations point at the agent, whatever the pod had; the pod's own
# go to the agent in ISTIO_PROMETHEUS_ANNOTATIONS.
merged_metrics := {
	"prometheus.io/scrape": "true",
	"prometheus.io/port": sprintf("%v", [values.prometheus.port]),
	"prometheus.io/path": "/stats/prometheus",
} if {
	values.prometheus.merge
} else := {}

metrics_annotations := [key | some key in ["prometheus.io/scrape", "prometheus.io/path", "prometheus.io/port"]; has_key(pod_annotations, key)]

prometheus_env := [{"name": "ISTIO_PROMETHEUS_ANNOTATIONS", "value": value}] if {
	values.prometheus.merge
	count(metrics_annotations) > 0
	value := sprintf(`{"scrape":%s,"path":%s,"port":%s}`, [json.marshal(object.get(pod_annotations, key, "")) | some key in ["prometheus.io/scrape", "prometheus.io/path", "prometheus.io/port"]])
} else := []

metadata_ops := array.concat(
	array.concat(
		map_additions("/metadata/labels", pod_labels, added_labels),
		map_additions("/metadata/annotations", pod_annotations, object.union(added_annotations, merged_metrics_if_none)),
	),
	[{"op": "add", "path": concat("/", ["/metadata/annotations", pointer(key)]), "value": value} |
		count(pod_annotations) > 0
		some key, value in merged_metrics
	],
)

# The merged annotations go with the added ones when the pod has no annotations at all.
merged_metrics_if_none := merged_metrics if {
	count(pod_annotations) == 0
} else := {}

# Add operations for the entries of added that current (the pod's map at path) does not have: the
# whole map when the pod has none.
map_additions(path, current, added) := [{"op": "add", "path": path, "value": added}] if {
	count(current) == 0
} else := [{"op": "add", "path": concat("/", [path, pointer(key)]), "value": value} |
	some key, value in added
	not has_key(current, key)
]

has_key(obj, key) if _ = obj[key]

pointer(key) := replace(replace(key, "~", "~0"), "/", "~1")

# Probes: the app's HTTP, TCP and gRPC probes become HTTP GETs of /app-health/<container>/<kind> on
# the agent's port, and the agent gets the original handlers in ISTIO_KUBE_APP_PROBERS.

probe_kinds := [["readinessProbe", "readyz"], ["livenessProbe", "livez"], ["startupProbe", "startupz"]]

app_probes := [probe |
	values.probes.rewrite
	some list in ["initContainers", "containers"]
	some index, container in object.get(pod.spec, list, [])
	container.name != values.proxy.name
	some [field, suffix] in probe_kinds
	original := container[field]
	handler := agent_handler(original, container)
	path := sprintf("/app-health/%s/%s", [container.name, suffix])
	probe := {
		"pointer": sprintf("/spec/%s/%d/%s", [list, index, field]),
		"path": path,
		"handler": handler,
		"timeout": object.get(original, "timeoutSeconds", 0),
		"rewritten": object.union(object.remove(original, ["httpGet", "tcpSocket", "grpc", "exec"]), {"httpGet": agent_get(original, path)}),
	}
]

probe_ops := [{"op": "replace", "path": probe.pointer, "value": probe.rewritten} | some probe in app_probes]

# The handler the agent runs for the kubelet, its port a number; undefined for exec probes and ports
# the container cannot resolve.
agent_handler(probe, container) := {"httpGet": object.union(probe.httpGet, {"port": port})} if {
	port := port_number(probe.httpGet.port, container)
} else := {"tcpSocket": object.union(probe.tcpSocket, {"port": port})} if {
	not probe.httpGet
	port := port_number(probe.tcpSocket.port, container)
} else := {"grpc": probe.grpc} if {
	not probe.httpGet
	not probe.tcpSocket
	probe.grpc
}

# What the kubelet asks the agent: an HTTP probe keeps its host and headers (HTTPS becomes HTTP,
# which the agent speaks).
agent_get(probe, path) := object.union(probe.httpGet, {"path": path, "port": values.probes.port, "scheme": "HTTP"}) if {
	probe.httpGet.scheme == "HTTPS"
} else := object.union(probe.httpGet, {"path": path, "port": values.probes.port}) if {
	probe.httpGet
} else := {"path": path, "port": values.probes.port}

port_number(port, container) := port if {
	is_number(port)
	port > 0
	port <= 65535
} else := named[0] if {
	is_string(port)
	named := [p.containerPort | some p in container.ports; p.name == port]
	count(named) > 0
} else := to_number(port) if {
	is_string(port)
	regex.match(`^[0-9]{1,5}$`, port)
	to_number(port) > 0
	to_number(port) <= 65535
}

# The agent's table, keyed by path in order, each handler's fields in the order Kubernetes writes
# them (json.marshal would sort them).
app_probers := json_object([[path, probers[path]] | some path in sort(object.keys(probers))]) if {
	count(app_probes) > 0
	probers := {probe.path: json_object(array.concat(
		[[kind, fields_json(handler, handler_fields[kind])] | some kind, handler in probe.handler],
		[["timeoutSeconds", json.marshal(probe.timeout)] | probe.timeout > 0],
	)) |
		some probe in app_probes
	}
}

handler_fields := {
	"httpGet": ["path", "port", "host", "scheme", "httpHeaders"],
	"tcpSocket": ["port", "host"],
	"grpc": ["port", "service"],
}

# JSON text of the members, [name, JSON text of the value], in order.
json_object(members) := concat("", ["{", concat(",", [sprintf("%s:%s", [json.marshal(m[0]), m[1]]) | some m in members]), "}"])

# JSON text of obj's fields in the order given, empty ones left out.
fields_json(obj, names) := json_object([[name, json.marshal(value)] |
	some name in names
	value := obj[name]
	not value in {null, "", 0, []}
])

# The pod's container ports, for the proxy's metadata.
pod_ports := concat("", [
	"[",
	concat(",", [fields_json(port, ["name", "hostPort", "containerPort", "protocol", "hostIP"]) |
		some container in pod.spec.containers
		some port in container.ports
	]),
	"]",
])

# The containers.

redirects := values.init.interceptionMode != "NONE"

native := values.proxy.native == true

# Native: istio-init then istio-proxy before the pod's own init containers. Classic: istio-init
# after them (they do not run behind a redirect with no proxy), istio-proxy among the containers,
# first when the app waits for it.
init_container_ops := prepend("/spec/initContainers", object.get(pod.spec, "initContainers", []), array.concat(
	[init_container | redirects],
	[native_proxy_container],
)) if {
	native
} else := append("/spec/initContainers", object.get(pod.spec, "initContainers", []), [init_container | redirects])

container_ops := [] if {
	native
} else := [{"op": "add", "path": "/spec/containers/0", "value": proxy_container}] if {
	values.proxyConfig.holdApplicationUntilProxyStarts == true
} else := [{"op": "add", "path": "/spec/containers/-", "value": proxy_container}]

volume_ops := append("/spec/volumes", current, [volume | some volume in volumes; not volume.name in {v.name | some v in current}]) if {
	current := object.get(pod.spec, "volumes", [])
}

prepend(path, current, items) := [{"op": "add", "path": path, "value": items}] if {
	count(items) > 0
	count(current) == 0
} else := [{"op": "add", "path": sprintf("%s/%d", [path, i]), "value": item} | some i, item in items]

append(path, current, items) := [{"op": "add", "path": path, "value": items}] if {
	count(items) > 0
	count(current) == 0
} else := [{"op": "add", "path": concat("", [path, "/-"]), "value": item} | some item in items]

field_env(name, path) := {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}

resource_env(name, resource) := {"name": name, "valueFrom": {"resourceFieldRef": {"resource": resource}}}

proxy_env := array.concat(
	array.concat(
		[
			field_env("POD_NAME", "metadata.name"),
			field_env("POD_NAMESPACE", "metadata.namespace"),
			field_env("INSTANCE_IP", "status.podIP"),
			field_env("SERVICE_ACCOUNT", "spec.serviceAccountName"),
			field_env("HOST_IP", "status.hostIP"),
			resource_env("ISTIO_CPU_LIMIT", "limits.cpu"),
			{"name": "PROXY_CONFIG", "value": json.marshal(values.proxyConfig)},
		],
		array.concat(prometheus_env, [{"name": name, "value": sprintf("%v", [metadata[name]])} |
			metadata := object.get(values.proxyConfig, "proxyMetadata", {})
			some name in sort(object.keys(metadata))
		]),
	),
	array.concat(
		[
			{"name": "ISTIO_META_POD_PORTS", "value": pod_ports},
			{"name": "ISTIO_META_APP_CONTAINERS", "value": concat(",", app_containers)},
			resource_env("GOMEMLIMIT", "limits.memory"),
			resource_env("GOMAXPROCS", "limits.cpu"),
			{"name": "ISTIO_META_CLUSTER_ID", "value": "Kubernetes"},
			{"name": "TRUST_DOMAIN", "value": values.trustDomain},
			{"name": "ISTIO_META_WORKLOAD_NAME", "value": workload_name},
			{"name": "ISTIO_META_INJECTION_VARIANT", "value": decision.variant},
			{"name": "ISTIO_META_INJECTION_REVISION", "value": revision},
			{"name": "ISTIO_META_INTERCEPTION_MODE", "value": values.init.interceptionMode},
		],
		[{"name": "ISTIO_KUBE_APP_PROBERS", "value": app_probers} | app_probers],
	),
)

proxy_security_context := {
	"allowPrivilegeEscalation": false, "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]}, "privileged": false,
	"readOnlyRootFilesystem": true, "runAsGroup": values.proxy.uid, "runAsNonRoot": false, "runAsUser": 0,
} if {
	values.init.interceptionMode == "TPROXY"
} else := {
	"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}, "privileged": false,
	"readOnlyRootFilesystem": true, "runAsGroup": values.proxy.uid, "runAsNonRoot": true, "runAsUser": values.proxy.uid,
}

ready_get := {"path": "/healthz/ready", "port": values.proxy.statusPort}

proxy_container := object.union(
	{
		"name": values.proxy.name,
		"image": values.proxy.image,
		"imagePullPolicy": values.proxy.imagePullPolicy,
		"args": [
			"proxy", "sidecar", "--domain", sprintf("$(POD_NAMESPACE).svc.%s", [values.clusterDomain]),
			sprintf("--proxyLogLevel=%s", [values.proxy.logLevel]),
			sprintf("--proxyComponentLogLevel=%s", [values.proxy.componentLogLevel]),
			sprintf("--log_output_level=%s", [values.proxy.agentLogLevel]),
			"--concurrency", sprintf("%v", [values.proxyConfig.concurrency]),
		],
		"env": proxy_env,
		"ports": [{"containerPort": values.proxy.prometheusPort, "name": "http-envoy-prom", "protocol": "TCP"}],
		"readinessProbe": {
			"httpGet": ready_get,
			"initialDelaySeconds": values.proxy.readiness.initialDelaySeconds,
			"periodSeconds": values.proxy.readiness.periodSeconds,
			"timeoutSeconds": values.proxy.readiness.timeoutSeconds,
			"failureThreshold": values.proxy.readiness.failureThreshold,
		},
		"resources": values.proxy.resources,
		"securityContext": proxy_security_context,
		"volumeMounts": [
			{"name": "istio-envoy", "mountPath": "/etc/istio/proxy"},
			{"name": "istio-data", "mountPath": "/var/lib/istio/data"},
			{"name": "istio-podinfo", "mountPath": "/etc/istio/pod"},
			{"name": "istio-token", "mountPath": "/var/run/secrets/tokens"},
		],
	},
	object.union(
		{"startupProbe": {
			"httpGet": ready_get, "initialDelaySeconds": 0, "periodSeconds": 1, "timeoutSeconds": 3,
			"failureThreshold": values.proxy.startup.failureThreshold,
		} |
			values.proxy.startup.enabled == true
		},
		{"lifecycle": {"postStart": {"exec": {"command": ["pilot-agent", "wait"]}}} |
			not native
			values.proxyConfig.holdApplicationUntilProxyStarts == true
		},
	),
)

# As a native sidecar: restarted whatever the pod's policy, and drained before the pod's containers
# stop.
native_proxy_container := object.union(proxy_container, {
	"restartPolicy": "Always",
	"lifecycle": {"preStop": {"exec": {"command": ["pilot-agent", "request", sprintf("--debug-port=%v", [values.probes.port]), "POST", "drain"]}}},
})

# -d: Envoy's metrics and health ports, the pod's excluded ports, and the agent's port, which the
# rewritten probes call.
excluded_inbound_ports := concat(",", ["15090,15021", with_port(values.init.excludeInboundPorts, sprintf("%v", [values.probes.port]))])

with_port(list, port) := list if {
	port in {"", "0"}
} else := list if {
	port in split(list, ",")
} else := concat(",", array.concat([item | some raw in split(list, ","); item := trim_space(raw); item != ""], [port]))

iptables_options := [["-q", "includeOutboundPorts"], ["-o", "excludeOutboundPorts"], ["-k", "kubevirtInterfaces"], ["-c", "excludeInterfaces"]]

init_container := {
	"name": values.init.name,
	"image": values.proxy.image,
	"imagePullPolicy": values.proxy.imagePullPolicy,
	"args": array.concat(
		[
			"istio-iptables", "-p", sprintf("%v", [values.proxy.outboundPort]), "-z", sprintf("%v", [values.proxy.inboundPort]),
			"-u", sprintf("%v", [values.proxy.uid]), "-m", values.init.interceptionMode, "-i", values.init.includeOutboundIPRanges,
			"-x", values.init.excludeOutboundIPRanges, "-b", values.init.includeInboundPorts, "-d", excluded_inbound_ports,
		],
		array.concat(
			[arg |
				some [flag, key] in iptables_options
				value := values.init[key]
				value != ""
				some arg in [flag, value]
			],
			[sprintf("--log_output_level=%s", [values.proxy.agentLogLevel])],
		),
	),
	# The proxy's resources, so that the same annotations size both.
	"resources": values.proxy.resources,
	"securityContext": {
		"allowPrivilegeEscalation": false, "capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]}, "privileged": false,
		"readOnlyRootFilesystem": false, "runAsGroup": 0, "runAsNonRoot": false, "runAsUser": 0,
	},
}

volumes := [
	{"name": "istio-envoy", "emptyDir": {"medium": "Memory"}},
	{"name": "istio-data", "emptyDir": {}},
	{"name": "istio-podinfo", "downwardAPI": {"items": [
		{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
		{"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}},
	]}},
	{"name": "istio-token", "projected": {"sources": [{"serviceAccountToken": {"audience": "istio-ca", "expirationSeconds": 43200, "path": "istio-token"}}]}},
]
