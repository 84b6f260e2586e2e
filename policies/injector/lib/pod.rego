# Facts about one admission request (the pod, its namespace, its owner, the injector) that both the
# mutating and the validating policy read. Every fact copes with absent or null fields.
package injector.lib

# Annotation the engine writes on every pod it injects: JSON with at least "revision", and the names
# of the "containers" and "initContainers" it added.
status_annotation := "rego-injector.io/status"

# Annotation Istio's own injector writes on the pods it injects.
istio_status_annotation := "sidecar.istio.io/status"

operation := op if {
	op := input.request.operation
	is_string(op)
} else := ""

creating if input.request.operation == "CREATE"

is_pod if input.object.kind == "Pod"

# An update of the pods/ephemeralcontainers subresource: `kubectl debug` adding a container to a
# running pod. The object is the whole pod, the new ephemeral containers included.
adding_ephemeral_containers if {
	input.request.subResource == "ephemeralcontainers"
	input.request.operation == "UPDATE"
}

# The ephemeral containers the request adds: those of the object that the old object lacks (by name).
new_ephemeral_containers := [c |
	some c in input.object.spec.ephemeralContainers
	is_object(c)
	not c.name in {name | some old in input.oldObject.spec.ephemeralContainers; name := old.name}
]

is_pod if input.request.kind.kind == "Pod"

# Revision of the bundle deciding this request.
revision := rev if {
	rev := input.injector.revision
	is_string(rev)
} else := ""

# Namespace the injector itself runs in; "" when unknown.
injector_namespace := name if {
	name := input.injector.namespace
	is_string(name)
} else := ""

namespace_name := name if {
	name := input.namespace.name
	is_string(name)
	name != ""
} else := name if {
	name := input.request.namespace
	is_string(name)
	name != ""
} else := name if {
	name := input.object.metadata.namespace
	is_string(name)
} else := ""

namespace_labels := labels if {
	labels := input.namespace.labels
	is_object(labels)
} else := {}

pod_labels := labels if {
	labels := input.object.metadata.labels
	is_object(labels)
} else := {}

pod_annotations := annotations if {
	annotations := input.object.metadata.annotations
	is_object(annotations)
} else := {}

# The pod as people know it, for messages: its name, else its generateName, else the request's name.
pod_description := sprintf("pod %q", [name]) if {
	name := input.object.metadata.name
	is_string(name)
	name != ""
} else := sprintf("pod %q (generateName)", [name]) if {
	name := input.object.metadata.generateName
	is_string(name)
	name != ""
} else := sprintf("pod %q", [name]) if {
	name := input.request.name
	is_string(name)
	name != ""
} else := sprintf("the pod of %s/%s", [kind, name]) if {
	kind := input.owner.kind
	name := input.owner.name
	is_string(kind)
	is_string(name)
	name != ""
} else := "unnamed pod"

containers := [c | some c in input.object.spec.containers; is_object(c)]

init_containers := [c | some c in input.object.spec.initContainers; is_object(c)]

container_names := {name | some c in array.concat(containers, init_containers); name := c.name}

has_proxy if proxy_name in container_names

host_network if input.object.spec.hostNetwork == true

# The namespace label that decides, as {"key", "value"}: the first key of namespace_label_keys the
# namespace has. Undefined when it has none of them.
namespace_switch := found[0] if {
	found := [{"key": key, "value": value} |
		some key in namespace_label_keys
		value := namespace_labels[key]
	]
}

namespace_enabled if namespace_switch.value == "enabled"

# A revision label that chose this revision (input.revision.label: {"on", "key", "value"}, from
# the engine's revision selection; under --revision, the label that would have chosen) enables
# injection as the namespace switch does, on the namespace or on the pod alone, as Istio's
# per-revision webhooks do; the pod may still opt out.
namespace_enabled if {
	not namespace_switch
	revision_label
}

revision_label := label if {
	label := input.revision.label
	is_string(label.key)
	is_string(label.value)
}

# The revision name the engine chose for the pod (input.revision.name); undefined when it chose none.
revision_name := name if {
	name := input.revision.name
	is_string(name)
	name != ""
}

# The revision name serving the pod: revision_name, else "default" (the engine chose none).
serving_rev := revision_name if {
	revision_name
} else := "default"

namespace_disabled if namespace_switch.value == "disabled"

# Every opt-in/out key the pod sets, as {"kind", "key", "value"}: labels first, then annotations,
# each in pod_keys order.
pod_switches := array.concat(
	[{"kind": "label", "key": key, "value": value} | some key in pod_keys; value := pod_labels[key]],
	[{"kind": "annotation", "key": key, "value": value} | some key in pod_keys; value := pod_annotations[key]],
)

valid_switch(switch) if switch.value in {"true", "false"}

# The pod's explicit choice: the first of pod_switches with a valid value. Undefined when the pod
# makes none, and the defaults apply.
pod_switch := valid[0] if {
	valid := [switch | some switch in pod_switches; valid_switch(switch)]
}

opted_in if pod_switch.value == "true"

opted_out if pod_switch.value == "false"

# A switch as people wrote it: pod label sidecar.istio.io/inject="false".
switch_string(switch) := sprintf("pod %s %s=%q", [switch.kind, switch.key, switch.value])

# Warnings about switches that did not decide: invalid values, and valid ones a stronger switch overrode.
switch_warnings := array.concat(
	[sprintf(
		"pod %s %s has invalid value %q; expected \"true\" or \"false\"; %s",
		[switch.kind, switch.key, switch.value, fallback],
	) |
		some switch in pod_switches
		not valid_switch(switch)
		fallback := invalid_switch_fallback
	],
	[sprintf("%s is overridden by %s", [switch_string(switch), switch_string(pod_switch)]) |
		some switch in pod_switches
		valid_switch(switch)
		switch.value != pod_switch.value
	],
)

invalid_switch_fallback := sprintf("using %s instead", [switch_string(pod_switch)]) if {
	pod_switch
} else := "using the default"

# The name of the revision that injected the pod, as its status records it; "default" when the
# status names none (an engine before revisions wrote none). Undefined without a status.
status_rev := rev if {
	rev := status.rev
	is_string(rev)
	rev != ""
} else := "default" if {
	status
}

# The injection status the engine recorded on the pod, when it is a JSON object with a revision and
# every other field has the type the engine reads (a hand-edited annotation may not).
status := parsed if {
	raw := pod_annotations[status_annotation]
	is_string(raw)
	json.is_valid(raw)
	parsed := json.unmarshal(raw)
	is_object(parsed)
	is_string(parsed.revision)
	every key in {"variant", "rev", "tag"} {
		nullable(object.get(parsed, key, null), "string")
	}
	every key in status_lists {
		string_list(object.get(parsed, key, null))
	}
	replaced := object.get(parsed, "replaced", null)
	nullable(replaced, "object")
	every _, containers in object.get(parsed, "replaced", {}) {
		nullable(containers, "object")
		every _, container in containers {
			is_object(container)
		}
	}
	status_requester(object.get(parsed, "requester", null))
	status_rewritten(object.get(parsed, "rewritten", null))
	status_rewritten_annotations(object.get(parsed, "rewrittenAnnotations", null))
}

# A status's rewritten annotations: null, or annotation keys to their former value or null.
status_rewritten_annotations(value) if value == null

status_rewritten_annotations(value) if {
	is_object(value)
	every _, before in value {
		nullable(before, "string")
	}
}

# A status's requester: null, or {"username": string, "groups": null or strings}.
status_requester(value) if value == null

status_requester(value) if {
	is_string(value.username)
	string_list(object.get(value, "groups", null))
}

# A status's rewritten probes: null, or by list (containers, initContainers) and container name,
# each probe field's original, an object or null.
status_rewritten(value) if value == null

status_rewritten(value) if {
	is_object(value)
	every list, containers in value {
		list in {"containers", "initContainers"}
		is_object(containers)
		every _, probes in containers {
			is_object(probes)
			every field, probe in probes {
				field in {"readinessProbe", "livenessProbe", "startupProbe"}
				nullable(probe, "object")
			}
		}
	}
}

status_lists := ["containers", "initContainers", "volumes", "imagePullSecrets", "labels", "annotations", "reasons", "reserved"]

# value is null or of type name.
nullable(value, name) if type_name(value) in {"null", name}

# value is null or a list of strings.
string_list(value) if value == null

string_list(value) if {
	is_array(value)
	every item in value {
		is_string(item)
	}
}

# The pod carries a status annotation this policy cannot read.
status_invalid if {
	_ = pod_annotations[status_annotation]
	not status
}

# Istio's injector injected the pod: it carries Istio's status annotation and not ours (the
# default templates write Istio's too, for the tools that read it).
istio_injected if {
	_ = pod_annotations[istio_status_annotation]
	not pod_annotations[status_annotation]
}

# The workload that owns the pod, as {"kind", "name", ...}: input.owner when the engine resolved it,
# else the pod's controller owner reference. Undefined for bare pods.
owner := o if {
	o := input.owner
	is_string(o.kind)
} else := refs[0] if {
	refs := [ref |
		some ref in input.object.metadata.ownerReferences
		ref.controller == true
		is_string(ref.kind)
	]
}

owner_string := sprintf("%s/%s", [owner.kind, name]) if {
	name := owner.name
	is_string(name)
} else := owner.kind

# How a pod without the sidecar came to lack it, when the pod says so itself; "" otherwise.
missing_sidecar_explanation := sprintf("; it opted out with %s", [switch_string(pod_switch)]) if {
	opted_out
} else := "; it uses hostNetwork, which is never injected" if {
	host_network
} else := ""
