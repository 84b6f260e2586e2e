# The validating policy: checks that pods that must have the sidecar have it, that no container would
# slip past it, and that opt-ins, opt-outs and injections look right. It looks at pods being
# created, and at the ephemeral containers `kubectl debug` adds to a running pod (the only
# containers of an existing pod that can change).
#
# Every rule runs in an enforcement mode (Gatekeeper's vocabulary): "deny" refuses the pod, "warn"
# returns the message as a warning, "dryrun" only records it. The mode comes from config enforcement
# (per rule, then per namespace), else the rule's default below.
package injector.validate

import data.injector.lib

# Every rule the pod breaks, as {"rule", "mode", "message"}, whatever the mode: the engine counts them
# by rule and mode. One rule per name below.

# require_sidecar: a namespace labelled to require the sidecar gets a pod without it.
violations contains violation("require_sidecar", msg) if {
	lib.is_pod
	lib.creating
	key := lib.require_sidecar_label
	lib.namespace_labels[key] == "true"
	not lib.has_proxy
	msg := sprintf(
		"namespace %q requires the %s sidecar (label %s=true), but %s has no container named %s%s",
		[lib.namespace_name, lib.proxy_name, key, lib.pod_description, lib.proxy_name, lib.missing_sidecar_explanation],
	)
}

# proxy_uid: a container of an injected pod runs as the proxy's UID, whose traffic is not redirected.
violations contains violation("proxy_uid", msg) if {
	lib.is_pod
	lib.creating
	lib.has_proxy
	some container in array.concat(lib.containers, lib.init_containers)
	not container.name in {lib.proxy_name, lib.init_name}
	run_as_user(container) == lib.proxy_uid
	msg := sprintf(
		"container %q of %s runs as UID %v, the sidecar's own UID: the sidecar lets that UID's traffic through untouched, so the container would bypass it; set another securityContext.runAsUser",
		[object.get(container, "name", ""), lib.pod_description, lib.proxy_uid],
	)
}

# proxy_uid, for an ephemeral container added to a running injected pod (kubectl debug --profile
# or a hand-made securityContext): the same bypass.
violations contains violation("proxy_uid", msg) if {
	lib.is_pod
	lib.adding_ephemeral_containers
	lib.has_proxy
	some container in lib.new_ephemeral_containers
	run_as_user(container) == lib.proxy_uid
	msg := sprintf(
		"ephemeral container %q added to %s runs as UID %v, the sidecar's own UID: the sidecar lets that UID's traffic through untouched, so the container would bypass it; set another securityContext.runAsUser",
		[object.get(container, "name", ""), lib.pod_description, lib.proxy_uid],
	)
}

# inject_annotation: the pod opts in or out with an annotation where a label would do.
violations contains violation("inject_annotation", msg) if {
	lib.is_pod
	lib.creating
	some key in lib.pod_keys
	value := lib.pod_annotations[key]
	msg := sprintf(
		"%s uses the annotation %s=%q; the label is preferred (the webhook can filter on it): set label %s instead",
		[lib.pod_description, key, value, label_suggestion(key, value)],
	)
}

# opted_out: the pod opted out in an enabled namespace.
violations contains violation("opted_out", msg) if {
	lib.is_pod
	lib.creating
	lib.namespace_enabled
	lib.opted_out
	msg := sprintf(
		"%s opted out of injection with %s and runs outside the mesh, although namespace %q is labelled %s=enabled",
		[lib.pod_description, lib.switch_string(lib.pod_switch), lib.namespace_name, lib.namespace_switch.key],
	)
}

# sidecar_removed: the status annotation lists a container the pod no longer has.
violations contains violation("sidecar_removed", msg) if {
	lib.is_pod
	lib.creating
	some list in ["containers", "initContainers"]
	names := lib.status[list]
	is_array(names)
	some name in names
	is_string(name)
	not name in lib.container_names
	msg := sprintf(
		"%s has annotation %s saying %s %q was injected, but it has no such container: the sidecar was removed after injection",
		[lib.pod_description, lib.status_annotation, container_noun(list), name],
	)
}

# METADATA
# title: Reasons to refuse the pod
# description: The messages of the violations in mode deny; empty when the pod is allowed.
deny contains v.message if {
	some v in violations
	v.mode == "deny"
}

# METADATA
# title: Warnings returned to the client
# description: The messages of the violations in mode warn.
warn contains v.message if {
	some v in violations
	v.mode == "warn"
}

# METADATA
# title: Violations only recorded
# description: The messages of the violations in mode dryrun, never shown to the client.
dryrun contains v.message if {
	some v in violations
	v.mode == "dryrun"
}

violation(rule, msg) := {"rule": rule, "mode": lib.enforcement_mode(rule, default_mode(rule)), "message": msg}

# The mode of each rule when config enforcement names none (or a value that is not a mode).
default_mode(rule) := {
	"require_sidecar": "deny",
	"proxy_uid": "deny",
	"inject_annotation": "warn",
	"opted_out": "warn",
	"sidecar_removed": "warn",
}[rule]

container_noun("initContainers") := "init container"

container_noun(list) := "container" if list != "initContainers"

label_suggestion(key, value) := sprintf("%s=%q", [key, value]) if {
	lib.valid_switch({"value": value})
} else := sprintf("%s=\"true\" or %s=\"false\"", [key, key])

# The UID a container runs as: its own securityContext.runAsUser, else the pod's.
run_as_user(container) := uid if {
	uid := container.securityContext.runAsUser
	is_number(uid)
} else := uid if {
	uid := input.object.spec.securityContext.runAsUser
	is_number(uid)
}
