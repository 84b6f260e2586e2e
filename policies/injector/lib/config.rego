# Typed access to the bundle's settings (data.injector.config) and template values
# (data.injector.values). A missing or mistyped key reads as a safe fallback, so that a custom bundle
# with a partial config still yields a decision instead of an error.
package injector.lib

# METADATA
# title: One setting
# description: data.injector.config[key] when it has the same type as fallback, else fallback.
setting(key, fallback) := value if {
	value := data.injector.config[key]
	type_name(value) == type_name(fallback)
} else := fallback

# Namespace label keys that switch injection on ("enabled") or off ("disabled"), in priority order.
namespace_label_keys := setting("namespace_labels", [])

# Pod label and annotation keys that opt a pod in ("true") or out ("false"), in priority order.
pod_keys := setting("pod_keys", [])

excluded_namespaces := {name | some name in setting("excluded_namespaces", [])}

# "enabled" or "disabled"; anything else is treated as "disabled".
global_policy := setting("policy", "enabled")

never_inject_selectors := setting("never_inject_selectors", [])

always_inject_selectors := setting("always_inject_selectors", [])

variant_annotations := setting("variant_annotations", [])

requestable_variants := {name | some name in setting("requestable_variants", [])}

native_owner_kinds := {kind | some kind in setting("native_owner_kinds", [])}

image_variants := setting("image_variants", [])

resource_annotations := setting("resource_annotations", {})

require_sidecar_label := setting("require_sidecar_label", "")

# The template values every decision starts from.
values := v if {
	v := data.injector.values
	is_object(v)
} else := {}

# Name of the sidecar container the templates inject.
proxy_name := name if {
	name := data.injector.values.proxy.name
	is_string(name)
} else := "istio-proxy"

# Name of the init container that sets up the traffic redirect.
init_name := name if {
	name := data.injector.values.init.name
	is_string(name)
} else := "istio-init"

# UID the sidecar runs as; the redirect lets this UID's traffic through untouched.
proxy_uid := uid if {
	uid := data.injector.values.proxy.uid
	is_number(uid)
} else := 1337
