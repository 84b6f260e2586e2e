# The validating policy: refuses pods that must have the sidecar but lack it, or whose containers would
# slip past it, and warns about opt-ins, opt-outs and injections that look wrong. It looks only at pods
# being created: the containers of an existing pod cannot change.
package injector.validate

import data.injector.lib

# METADATA
# title: Reasons to refuse the pod
# description: Empty when the pod is allowed.
deny contains msg if {
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

deny contains msg if {
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

# METADATA
# title: Warnings returned with an allowed pod
# description: Empty when there is nothing to say.
warn contains msg if {
	lib.is_pod
	lib.creating
	some key in lib.pod_keys
	value := lib.pod_annotations[key]
	msg := sprintf(
		"%s uses the annotation %s=%q; the label is preferred (the webhook can filter on it): set label %s instead",
		[lib.pod_description, key, value, label_suggestion(key, value)],
	)
}

warn contains msg if {
	lib.is_pod
	lib.creating
	lib.namespace_enabled
	lib.opted_out
	msg := sprintf(
		"%s opted out of injection with %s and runs outside the mesh, although namespace %q is labelled %s=enabled",
		[lib.pod_description, lib.switch_string(lib.pod_switch), lib.namespace_name, lib.namespace_switch.key],
	)
}

warn contains msg if {
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
