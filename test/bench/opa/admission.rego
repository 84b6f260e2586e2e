# The peer for the load harness: OPA's own server answering the same AdmissionReview as
# rego-injector, with the same default policies deciding, and the sidecar variant built as a JSON
# patch in Rego (the way kube-mgmt-style policies do it) instead of rendered from a Go template.
# Served with `opa run --server --set default_decision=bench/admission/review`; the harness checks
# that both patches give the same pod before it measures.
package bench.admission

import data.injector.mutate

# The policy input rego-injector builds, from the review. The harness's pods opt in by label, and
# the injector runs without a cluster, so the namespace has no labels.
policy_input := {
	"request": object.remove(input.request, ["object", "oldObject"]),
	"object": input.request.object,
	"namespace": {"name": input.request.namespace, "labels": {}, "annotations": {}},
	"injector": {"revision": "default-1", "namespace": ""},
}

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
} else := {"uid": input.request.uid, "allowed": true}

pod := input.request.object

values := decision.values

patch := array.concat(
	array.concat(metadata_ops, [{"op": "add", "path": "/spec/initContainers", "value": [init_container]}]),
	array.concat([{"op": "add", "path": "/spec/containers/-", "value": proxy_container}], [{"op": "add", "path": "/spec/volumes/-", "value": v} | some v in volumes]),
)

# The labels and annotations the sidecar variant adds, where the pod has none of that name.
added_labels := {
	"security.istio.io/tlsMode": "istio",
	"service.istio.io/canonical-name": pod.metadata.labels.app,
}

added_annotations := {
	"prometheus.io/path": "/stats/prometheus",
	"prometheus.io/port": "15020",
	"prometheus.io/scrape": "true",
	"kubectl.kubernetes.io/default-container": pod.spec.containers[0].name,
}

pointer(key) := replace(replace(key, "~", "~0"), "/", "~1")

metadata_ops := array.concat(
	[{"op": "add", "path": concat("", ["/metadata/labels/", pointer(k)]), "value": v} |
		some k, v in added_labels
		not pod.metadata.labels[k]
	],
	[{"op": "add", "path": concat("", ["/metadata/annotations/", pointer(k)]), "value": v} |
		some k, v in added_annotations
		not pod.metadata.annotations[k]
	],
)

field_env(name, path) := {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}

# The JSON of the pod's container ports, as the Go template writes it.
pod_ports := concat("", [
	"[", concat(",", [sprintf(`{"name":%q,"containerPort":%d}`, [p.name, p.containerPort]) |
		some c in pod.spec.containers
		some p in c.ports
	]),
	"]",
])

# A ReplicaSet's pod is named after its Deployment: the ReplicaSet's name less the template hash.
workload_name := name if {
	some ref in pod.metadata.ownerReferences
	ref.controller
	ref.kind == "ReplicaSet"
	suffix := concat("", ["-", pod.metadata.labels["pod-template-hash"]])
	endswith(ref.name, suffix)
	name := trim_suffix(ref.name, suffix)
} else := pod.metadata.name

proxy_container := {
	"name": values.proxy.name,
	"image": values.proxy.image,
	"imagePullPolicy": values.proxy.imagePullPolicy,
	"args": ["proxy", "sidecar", "--domain", sprintf("$(POD_NAMESPACE).svc.%s", [values.clusterDomain]), sprintf("--proxyLogLevel=%s", [values.proxy.logLevel]), "--concurrency", sprintf("%v", [values.proxy.concurrency])],
	"env": [
		field_env("POD_NAME", "metadata.name"),
		field_env("POD_NAMESPACE", "metadata.namespace"),
		field_env("INSTANCE_IP", "status.podIP"),
		field_env("SERVICE_ACCOUNT", "spec.serviceAccountName"),
		field_env("HOST_IP", "status.hostIP"),
		{"name": "PROXY_CONFIG", "value": json.marshal({"discoveryAddress": values.discoveryAddress, "concurrency": values.proxy.concurrency})},
		{"name": "ISTIO_META_POD_PORTS", "value": pod_ports},
		{"name": "ISTIO_META_CLUSTER_ID", "value": "Kubernetes"},
		{"name": "TRUST_DOMAIN", "value": values.trustDomain},
		{"name": "ISTIO_META_WORKLOAD_NAME", "value": workload_name},
		{"name": "ISTIO_META_INJECTION_VARIANT", "value": "sidecar"},
		{"name": "ISTIO_META_INJECTION_REVISION", "value": "default-1"},
	],
	"ports": [{"containerPort": values.proxy.prometheusPort, "name": "http-envoy-prom", "protocol": "TCP"}],
	"readinessProbe": {"httpGet": {"path": "/healthz/ready", "port": values.proxy.statusPort}, "initialDelaySeconds": 1, "periodSeconds": 2, "timeoutSeconds": 3, "failureThreshold": 30},
	"resources": values.proxy.resources,
	"securityContext": {
		"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}, "privileged": false, "readOnlyRootFilesystem": true,
		"runAsGroup": values.proxy.uid, "runAsNonRoot": true, "runAsUser": values.proxy.uid,
	},
	"volumeMounts": [
		{"name": "istio-envoy", "mountPath": "/etc/istio/proxy"},
		{"name": "istio-data", "mountPath": "/var/lib/istio/data"},
		{"name": "istio-podinfo", "mountPath": "/etc/istio/pod"},
		{"name": "istio-token", "mountPath": "/var/run/secrets/tokens"},
	],
}

init_container := {
	"name": values.init.name,
	"image": values.proxy.image,
	"imagePullPolicy": values.proxy.imagePullPolicy,
	"args": [
		"istio-iptables", "-p", sprintf("%v", [values.proxy.outboundPort]), "-z", sprintf("%v", [values.proxy.inboundPort]),
		"-u", sprintf("%v", [values.proxy.uid]), "-m", "REDIRECT", "-i", "*", "-x", "", "-b", "*", "-d", values.init.excludeInboundPorts,
	],
	"resources": {"requests": {"cpu": "10m", "memory": "40Mi"}, "limits": {"cpu": "100m", "memory": "50Mi"}},
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
