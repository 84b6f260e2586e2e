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

# Names that stand for a list of templates in a variant request (Istio's injection aliases).
template_aliases := setting("template_aliases", {})

native_owner_kinds := {kind | some kind in setting("native_owner_kinds", [])}

# Whether the proxy runs as a native sidecar unless a pod says otherwise.
native_sidecars := setting("native_sidecars", true)

# The pods' init containers, by name, that run before a native sidecar proxy (Istio's
# INIT_CONTAINER_BEFORE_PROXY): a comma list, as sidecar.istio.io/init-containers-before-proxy.
init_containers_before_proxy := setting("init_containers_before_proxy", "")

# Templates that turn a setting off whatever the pod or the bundle says: template name to
# {"rewrite_probes": false, "merge_metrics": false} (the proxyless gRPC templates, which run no Envoy).
template_settings := setting("template_settings", {})

image_variants := setting("image_variants", [])

resource_annotations := setting("resource_annotations", {})

require_sidecar_label := setting("require_sidecar_label", "")

# Variants only some subjects may ask for: variant name to a subjects object (lib/subjects.rego).
privileged_variants := setting("privileged_variants", {})

# METADATA
# title: One setting of an override
# description: >-
#   data.injector.config.overrides[name][key] when it has the same type as fallback, else fallback.
override_setting(name, key, fallback) := value if {
	value := data.injector.config.overrides[name][key]
	type_name(value) == type_name(fallback)
} else := fallback

# What a refused override does to the pod: "deny" refuses the pod; "ignore" (and any other value)
# injects it without the override, with a warning.
refusal_mode := "deny" if {
	data.injector.config.overrides.refused == "deny"
} else := "ignore"

# Image prefixes a proxy image override must start with; none: no image override is allowed.
proxy_image_registries := [prefix | some prefix in override_setting("proxy_image", "registries", []); is_string(prefix)]

# Proxy log levels a pod may ask for; Envoy's own levels when the config lists none.
log_levels := [level | some level in override_setting("log_level", "levels", envoy_log_levels); is_string(level)]

envoy_log_levels := ["trace", "debug", "info", "warning", "error", "critical", "off"]

# METADATA
# title: Largest proxy resource a pod may ask for
# description: >-
#   config overrides.resources.max[resource] (cpu, memory) as text: a YAML number (cpu: 4) reads
#   as its text, and anything else that is not a quantity makes every override of that resource
#   refused. Undefined when there is no maximum.
resource_maximum(resource) := max if {
	max := override_setting("resources", "max", {})[resource]
	is_string(max)
} else := sprintf("%v", [max]) if {
	max := override_setting("resources", "max", {})[resource]
}

# Enforcement modes of the validating rules (Gatekeeper's): refuse the pod, warn, or only record.
enforcement_modes := {"dryrun", "warn", "deny"}

# METADATA
# title: Enforcement mode of a validating rule
# description: >-
#   config enforcement.namespaces[<pod's namespace>][rule], else enforcement.rules[rule], else
#   fallback (the rule's own default); a value that is not a mode is skipped.
enforcement_mode(rule, fallback) := mode if {
	mode := data.injector.config.enforcement.namespaces[namespace_name][rule]
	mode in enforcement_modes
} else := mode if {
	mode := data.injector.config.enforcement.rules[rule]
	mode in enforcement_modes
} else := fallback

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

# Name of the init container that sets up the traffic redirect, or with istio-cni (values
# cni.enabled) checks the redirect the plugin set up.
init_name := name if {
	data.injector.values.cni.enabled == true
	name := data.injector.values.cni.validationName
	is_string(name)
} else := name if {
	name := data.injector.values.init.name
	is_string(name)
} else := "istio-init"

# UID the sidecar runs as; the redirect lets this UID's traffic through untouched.
proxy_uid := uid if {
	uid := data.injector.values.proxy.uid
	is_number(uid)
} else := 1337

# The annotation values Go's strconv.ParseBool reads, as Istio reads its boolean annotations.
parse_bool := {
	"1": true, "t": true, "T": true, "TRUE": true, "true": true, "True": true,
	"0": false, "f": false, "F": false, "FALSE": false, "false": false, "False": false,
}

# A boolean in reasons and warnings.
on_off(true) := "on"

on_off(false) := "off"
