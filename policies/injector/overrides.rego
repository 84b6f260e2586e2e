# Overrides: pod annotations that change a setting of the sidecar (variant, proxy image, resources,
# log level, traffic redirect). One is honoured only when config overrides lets the request use it
# and its value passes the override's check; otherwise it is refused, and config overrides.refused
# says whether the mutating policy injects the pod without it (with a warning) or denies it.
package injector.overrides

import data.injector.lib

# The annotations Istio defines for per-pod settings: which override governs each, how its value is
# checked, where it goes in values, and what it does (for reasons). An "append" value is added to
# the default list in values instead of replacing it, as Istio does, so that a pod cannot stop the
# proxy's own ports from being excluded.
istio_overrides := {
	"sidecar.istio.io/proxyImage": {
		"override": "proxy_image", "check": "image",
		"path": ["proxy", "image"], "effect": "sets the proxy image",
	},
	"sidecar.istio.io/proxyImageType": {
		"override": "proxy_image", "check": "image_type",
		"path": ["proxy", "imageType"], "effect": "sets the proxy image's type (the suffix of its tag)",
	},
	"sidecar.istio.io/userVolume": {
		"override": "user_volumes", "check": "user_volumes",
		"path": ["proxy", "userVolumes"], "effect": "adds volumes to the pod",
	},
	"sidecar.istio.io/userVolumeMount": {
		"override": "user_volumes", "check": "user_volume_mounts",
		"path": ["proxy", "userVolumeMounts"], "effect": "mounts volumes into the proxy",
	},
	"sidecar.istio.io/bootstrapOverride": {
		"override": "user_volumes", "check": "configmap_name",
		"path": ["proxy", "bootstrapConfigMap"], "effect": "gives the proxy a custom Envoy bootstrap from that ConfigMap",
	},
	"sidecar.istio.io/capNetBindService": {
		"override": "capabilities", "check": "boolean",
		"path": ["proxy", "capNetBindService"], "effect": "sets whether the proxy may bind ports below 1024 (NET_BIND_SERVICE)",
	},
	"sidecar.istio.io/logLevel": {
		"override": "log_level", "check": "log_level",
		"path": ["proxy", "logLevel"], "effect": "sets the proxy log level",
	},
	"sidecar.istio.io/componentLogLevel": {
		"override": "log_level", "check": "component_log_level",
		"path": ["proxy", "componentLogLevel"], "effect": "sets the log levels of Envoy's components",
	},
	"sidecar.istio.io/agentLogLevel": {
		"override": "log_level", "check": "agent_log_level",
		"path": ["proxy", "agentLogLevel"], "effect": "sets the log levels of the agent and of istio-iptables",
	},
	"traffic.sidecar.istio.io/excludeInboundPorts": {
		"override": "excluded_ports", "check": "ports", "append": true,
		"path": ["init", "excludeInboundPorts"], "effect": "adds inbound ports excluded from the redirect",
	},
	"traffic.sidecar.istio.io/excludeOutboundPorts": {
		"override": "excluded_ports", "check": "ports", "append": true,
		"path": ["init", "excludeOutboundPorts"], "effect": "adds outbound ports excluded from the redirect",
	},
	"traffic.sidecar.istio.io/includeInboundPorts": {
		"override": "redirect", "check": "ports_or_all",
		"path": ["init", "includeInboundPorts"], "effect": "sets the inbound ports redirected to the proxy",
	},
	"traffic.sidecar.istio.io/includeOutboundIPRanges": {
		"override": "redirect", "check": "ranges_or_all",
		"path": ["init", "includeOutboundIPRanges"], "effect": "sets the outbound IP ranges redirected to the proxy",
	},
	"traffic.sidecar.istio.io/excludeOutboundIPRanges": {
		"override": "redirect", "check": "ranges",
		"path": ["init", "excludeOutboundIPRanges"], "effect": "sets the outbound IP ranges excluded from the redirect",
	},
	"proxy.istio.io/config": {
		"override": "proxy_config", "check": "proxy_config",
		"path": ["proxyConfig"], "effect": "sets proxy configuration over the mesh default",
	},
	"traffic.sidecar.istio.io/includeOutboundPorts": {
		"override": "redirect", "check": "ports",
		"path": ["init", "includeOutboundPorts"], "effect": "sets the outbound ports redirected to the proxy whatever their destination",
	},
	"sidecar.istio.io/interceptionMode": {
		"override": "redirect", "check": "interception_mode",
		"path": ["init", "interceptionMode"], "effect": "sets how traffic is redirected to the proxy",
	},
	"traffic.sidecar.istio.io/excludeInterfaces": {
		"override": "redirect", "check": "interfaces",
		"path": ["init", "excludeInterfaces"], "effect": "sets the network interfaces whose traffic is not redirected",
	},
	"traffic.sidecar.istio.io/kubevirtInterfaces": {
		"override": "redirect", "check": "interfaces",
		"path": ["init", "kubevirtInterfaces"], "effect": "sets the virtual machine interfaces whose outbound traffic is redirected",
	},
	"istio.io/reroute-virtual-interfaces": {
		"override": "redirect", "check": "interfaces",
		"path": ["init", "rerouteVirtualInterfaces"], "effect": "sets the virtual interfaces whose inbound traffic is rerouted as outbound (it wins over kubevirtInterfaces)",
	},
}

# The entry of annotation key: a resource annotation of config resource_annotations (which wins, as
# config may redefine a key), else one of istio_overrides. Undefined for other annotations, so that
# only the annotations a pod has are looked up.
override_entry(key) := {
	"override": "resources", "check": "quantity", "resource": resource,
	"path": ["proxy", "resources", kind, resource], "effect": sprintf("sets proxy %s.%s", [kind, resource]),
} if {
	[kind, resource] := lib.resource_annotations[key]
	is_string(kind)
	is_string(resource)
} else := istio_overrides[key]

# METADATA
# title: The pod's overrides, judged
# description: >-
#   {"entry", "annotation", "value", "refusal"} for each override annotation the pod has, in
#   annotation key order; refusal is "" for an override that is honoured.
judged := [{"entry": entry, "annotation": key, "value": value, "refusal": override_refusal(entry, key, value)} |
	some key, value in lib.pod_annotations
	entry := override_entry(key)
]

# The overrides honoured, as {"values", "reason"}.
applied := [{
	"values": nest(override.entry.path, override_value(override.entry, override.value)),
	"reason": sprintf("pod annotation %s=%q %s", [override.annotation, override.value, override.entry.effect]),
} |
	some override in judged
	override.refusal == ""
]

# Whether a resource annotation was honoured: then, as Istio does, the proxy's resources are the
# annotations' alone, none of the defaults (proxyCPU alone gives a cpu request and no limits).
resources_overridden if {
	some override in judged
	override.refusal == ""
	override.entry.override == "resources"
}

# The template values overrides start from: the bundle's, less the default resources when a
# resource annotation was honoured.
base_values := json.remove(lib.values, ["proxy/resources"]) if {
	resources_overridden
} else := lib.values

# METADATA
# title: Honoured overrides
# description: >-
#   {"annotation", "value", "reserved"} for each override honoured: the variant request first,
#   then the others in annotation key order. reserved is true when config lists the subjects that
#   may use the override, so that who asked decided; the engine then records the requester in the
#   status annotation, and audit judges the pod as that requester. The decision returns them as
#   honoured_overrides.
honoured := array.concat(honoured_variant, [{"annotation": override.annotation, "value": text(override.value), "reserved": reserved(override.entry.override)} |
	some override in judged
	override.refusal == ""
])

honoured_variant := [{"annotation": request.key, "value": text(request.value), "reserved": reserved_variant}] if {
	request := requested_variant
	not variant_refusal
} else := []

# Whether override name is reserved to the subjects config lists for it.
reserved(name) if {
	lib.override_subjects_set(name)
	not lib.subjects_unrestricted(data.injector.config.overrides[name].subjects)
} else := false

# A request naming a privileged variant is always reserved; another is as overrides.variant says.
reserved_variant if {
	some name in requested_templates
	privileged_variant(name)
} else := reserved("variant")

# METADATA
# title: Refused overrides
# description: >-
#   {"annotation", "value", "reason"} for each override refused: the variant request first, then
#   the others in annotation key order. The decision returns them as refused_overrides.
refused := array.concat(refused_variant, [{"annotation": override.annotation, "value": text(override.value), "reason": override.refusal} |
	some override in judged
	override.refusal != ""
])

refused_variant := [{"annotation": request.key, "value": text(request.value), "reason": variant_refusal}] if {
	request := requested_variant
} else := []

# An annotation value as text: the Kubernetes API only has strings, but a test or a tool may not.
text(value) := value if {
	is_string(value)
} else := json.marshal(value)

# In "ignore" mode, each refused override is a warning.
warnings := [sprintf("%s; ignoring it", [r.reason]) | some r in refused]

# Why the override annotation key=value is refused; "" when it is honoured. The request must be
# allowed to use the override, then the value must pass its check.
override_refusal(entry, key, value) := sprintf(
	"pod annotation %s=%q is reserved to the subjects listed in config overrides.%s.subjects: %s are not listed",
	[key, value, entry.override, lib.subject_description],
) if {
	not lib.may_override(entry.override)
} else := sprintf("pod annotation %s=%v is not a string", [key, value]) if {
	not is_string(value)
} else := sprintf("pod annotation %s=%q %s", [key, value, problem]) if {
	problem := value_problem(entry, value)
} else := ""

# What is wrong with value for the override entry; undefined when it is fine.
value_problem(entry, value) := "is not an image reference" if {
	entry.check == "image"
	not regex.match(image_reference_pattern, value)
} else := sprintf("names an image outside the allowed registries (%s)", [listing(lib.proxy_image_registries, "config overrides.proxy_image.registries lists none")]) if {
	entry.check == "image"
	not registry_allowed(value)
} else := sprintf("is not an allowed log level (allowed: %s)", [listing(lib.log_levels, "none")]) if {
	entry.check == "log_level"
	not value in lib.log_levels
} else := "is not a comma-separated list of ports (1-65535)" if {
	entry.check == "ports"
	not port_list(value)
} else := "is neither * nor a comma-separated list of ports (1-65535)" if {
	entry.check == "ports_or_all"
	value != "*"
	not port_list(value)
} else := "is not a comma-separated list of IP ranges in CIDR notation" if {
	entry.check == "ranges"
	not range_list(value)
} else := "is neither * nor a comma-separated list of IP ranges in CIDR notation" if {
	entry.check == "ranges_or_all"
	value != "*"
	not range_list(value)
} else := "is not a comma-separated list of component:level (levels: trace, debug, info, warning, error, critical, off)" if {
	entry.check == "component_log_level"
	not every_item_matches(value, `^[a-z0-9_]+:(trace|debug|info|warning|error|critical|off)$`)
} else := "is not a comma-separated list of [scope:]level (levels: debug, info, warn, error, fatal, none)" if {
	entry.check == "agent_log_level"
	not every_item_matches(value, `^([a-zA-Z0-9_.-]+:)?(debug|info|warn|error|fatal|none)$`)
} else := "is not an image type (default, distroless, debug or another lower-case name)" if {
	entry.check == "image_type"
	not regex.match(`^[a-z0-9][a-z0-9.-]{0,63}$`, value)
} else := "is not true or false" if {
	entry.check == "boolean"
	not value in {"true", "false"}
} else := problem if {
	entry.check in {"user_volumes", "user_volume_mounts"}
	problem := user_volumes_problem(entry.check, value)
} else := "is not a ConfigMap name" if {
	entry.check == "configmap_name"
	not regex.match(`^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$`, value)
} else := "is not an interception mode (REDIRECT, TPROXY or NONE)" if {
	entry.check == "interception_mode"
	not value in {"REDIRECT", "TPROXY", "NONE"}
} else := "is not a comma-separated list of network interface names" if {
	entry.check == "interfaces"
	not interface_list(value)
} else := problem if {
	entry.check == "proxy_config"
	problem := proxy_config_problem(value)
} else := "is not a resource quantity" if {
	entry.check == "quantity"
	not quantity(value)
} else := sprintf("cannot be checked: config overrides.resources.max.%s, %q, is not a quantity", [entry.resource, max]) if {
	entry.check == "quantity"
	max := lib.resource_maximum(entry.resource)
	not quantity(max)
} else := sprintf("is above the largest proxy %s a pod may ask for, %s (config overrides.resources.max.%s)", [entry.resource, max, entry.resource]) if {
	entry.check == "quantity"
	max := lib.resource_maximum(entry.resource)
	quantity_value(value) > quantity_value(max)
}

listing(items, none) := concat(", ", items) if {
	count(items) > 0
} else := none

# The value an honoured override puts in values: lists without their spaces, and an "append" list
# after the default one.
override_value(entry, value) := concat(",", [items | some items in [shipped, concat(",", list_items(value))]; items != ""]) if {
	entry.append
	shipped := object.get(lib.values, entry.path, "")
	is_string(shipped)
} else := concat(",", list_items(value)) if {
	entry.check in {"ports", "ports_or_all", "ranges", "ranges_or_all", "interfaces", "component_log_level", "agent_log_level"}
} else := yaml.unmarshal(value) if {
	entry.check == "proxy_config"
} else := json.unmarshal(value) if {
	entry.check in {"user_volumes", "user_volume_mounts"}
} else := value == "true" if {
	entry.check == "boolean"
} else := value

nest([a], value) := {a: value}

nest([a, b], value) := {a: {b: value}}

nest([a, b, c, d], value) := {a: {b: {c: {d: value}}}}

# --- the variant request -----------------------------------------------------------------------------

# The first variant annotation the pod has, as {"key", "value"}.
requested_variant := found[0] if {
	found := [{"key": key, "value": value} | some key in lib.variant_annotations; value := lib.pod_annotations[key]]
}

# The templates the variant request names, in order: its value split at commas, as Istio reads
# inject.istio.io/templates ("sidecar,custom" renders sidecar, then custom merged over it).
requested_templates := [name |
	some item in split(requested_variant.value, ",")
	trimmed := trim_space(item)
	trimmed != ""
	some name in alias(trimmed)
] if {
	is_string(requested_variant.value)
}

# The templates a name stands for: the list config template_aliases gives it (one level, as Istio
# expands its aliases), else the name itself.
alias(name) := names if {
	names := lib.template_aliases[name]
	is_array(names)
	every n in names {
		is_string(n)
	}
} else := [name]

# The names a variant request may give: the bundle's templates but its partials (named with "_").
available_templates := {name | some name, _ in data.injector.templates; not startswith(name, "_")}

# The names the variant request gives that the bundle has no template for.
unknown_templates := [name | some name in requested_templates; not name in available_templates]

# METADATA
# title: Why the variant request is refused
# description: >-
#   Undefined when it is honoured (or when there is none). Every template it names must be one
#   the request may use: a privileged variant only for the subjects config privileged_variants
#   lists for it; any other must be in requestable_variants, and the request allowed to use
#   overrides.variant. The first refused name says why.
variant_refusal := sprintf("pod annotation %s=%s is not a string", [request.key, json.marshal(request.value)]) if {
	request := requested_variant
	not is_string(request.value)
} else := sprintf("pod annotation %s=%q names no template", [request.key, request.value]) if {
	request := requested_variant
	count(requested_templates) == 0
} else := refusals[0] if {
	request := requested_variant
	refusals := [reason | some name in requested_templates; reason := template_refusal(request, name)]
	count(refusals) > 0
}

template_refusal(request, name) := sprintf(
	"pod annotation %s=%q asks for template %s, which this bundle does not have (it has: %s)",
	[request.key, request.value, name, concat(", ", sort(available_templates))],
) if {
	not name in available_templates
} else := sprintf(
	"pod annotation %s=%q asks for variant %s, which is reserved to the subjects listed in config privileged_variants[%q]: %s are not listed",
	[request.key, request.value, name, name, lib.subject_description],
) if {
	privileged_variant(name)
	not lib.subject_listed(lib.privileged_variants[name])
} else := sprintf(
	"pod annotation %s=%q asks for a variant pods may not request (allowed: %s)",
	[request.key, request.value, concat(", ", sort([sprintf("%v", [n]) | some n in lib.requestable_variants]))],
) if {
	not privileged_variant(name)
	not name in lib.requestable_variants
} else := sprintf(
	"pod annotation %s=%q is reserved to the subjects listed in config overrides.variant.subjects: %s are not listed",
	[request.key, request.value, lib.subject_description],
) if {
	not privileged_variant(name)
	not lib.may_override("variant")
}

privileged_variant(name) if _ = lib.privileged_variants[name]

# --- value checks ------------------------------------------------------------------------------------

# An image reference as the container runtime reads it (distribution/reference): an optional
# registry host (and port), lower-case path components, an optional tag and an optional digest.
image_reference_pattern := concat("", [
	`^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?/)?`,
	`[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*`,
	`(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?`,
	`(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$`,
])

# The image starts with one of the allowed prefixes, compared as written ("istio/proxyv2" is not
# "docker.io/istio/proxyv2").
registry_allowed(image) if {
	some prefix in lib.proxy_image_registries
	startswith(image, prefix)
}

# The items of a comma-separated list, without surrounding spaces; none for an empty value.
list_items(value) := [] if {
	trim_space(value) == ""
} else := [trim_space(item) | some item in split(value, ",")]

port_list(value) if {
	every item in list_items(value) {
		port(item)
	}
}

port(item) if {
	regex.match(`^[0-9]{1,5}$`, item)
	to_number(item) >= 1
	to_number(item) <= 65535
}

# Every item of the comma-separated value matches pattern, and there is at least one.
every_item_matches(value, pattern) if {
	items := list_items(value)
	count(items) > 0
	every item in items {
		regex.match(pattern, item)
	}
}

# Network interface names as Linux takes them: 1-15 characters, no slash, colon or space.
interface_list(value) if {
	every item in list_items(value) {
		regex.match(`^[A-Za-z0-9_.@-]{1,15}$`, item)
	}
}

range_list(value) if {
	every item in list_items(value) {
		net.cidr_is_valid(item)
	}
}

# Kubernetes resource quantity: 100m, 0.5, 128Mi, 1G, 1e3.
quantity_pattern := `^([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+|[numkMGTPE]|[KMGTPE]i)?$`

quantity(value) if {
	is_string(value)
	regex.match(quantity_pattern, value)
}

# The number a quantity stands for (cpu in cores, memory in bytes). units.parse knows every suffix
# Kubernetes does but u (micro) and n (nano).
quantity_value(value) := units.parse(trim_suffix(value, "u")) / 1000000 if {
	endswith(value, "u")
} else := units.parse(trim_suffix(value, "n")) / 1000000000 if {
	endswith(value, "n")
} else := units.parse(value)

# --- proxy.istio.io/config ---------------------------------------------------------------------------

# The ProxyConfig fields a pod may set, each with its check: what Istio's injection template and
# agent read of it that a pod's sidecar can be given without istiod.
proxy_config_fields := {
	"concurrency": "a whole number of worker threads (0: one per CPU)",
	"holdApplicationUntilProxyStarts": "true or false",
	"proxyMetadata": "an object of environment variable names to strings",
	"terminationDrainDuration": "a duration such as 5s or 1m30s",
	"proxyStatsMatcher": "an object of inclusionPrefixes, inclusionSuffixes and inclusionRegexps, each a list of strings",
}

# What is wrong with a proxy.istio.io/config value (YAML or JSON, as Istio reads it); undefined
# when it is fine.
proxy_config_problem(value) := "is not YAML or JSON" if {
	not yaml.is_valid(value)
} else := "is not a ProxyConfig object" if {
	not is_object(yaml.unmarshal(value))
} else := sprintf("sets %s, which a pod may not set (it may set %s)", [concat(", ", sort(unknown)), concat(", ", sort(object.keys(proxy_config_fields)))]) if {
	unknown := {key | some key, _ in yaml.unmarshal(value); not proxy_config_fields[key]}
	count(unknown) > 0
} else := sprintf("sets %s, which must be %s", [key, proxy_config_fields[key]]) if {
	some key, field in yaml.unmarshal(value)
	not proxy_config_field(key, field)
}

proxy_config_field("concurrency", v) if {
	is_number(v)
	v == floor(v)
	v >= 0
}

proxy_config_field("holdApplicationUntilProxyStarts", v) if is_boolean(v)

proxy_config_field("proxyMetadata", v) if {
	is_object(v)
	every name, value in v {
		regex.match(`^[-._a-zA-Z][-._a-zA-Z0-9]*$`, name)
		is_string(value)
	}
}

proxy_config_field("terminationDrainDuration", v) if {
	is_string(v)
	regex.match(`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`, v)
}

proxy_config_field("proxyStatsMatcher", v) if {
	is_object(v)
	every key, list in v {
		key in {"inclusionPrefixes", "inclusionSuffixes", "inclusionRegexps"}
		is_array(list)
		every item in list {
			is_string(item)
		}
	}
}

# --- Istio annotations this bundle does not honour yet -------------------------------------------------

# Istio's injection annotations the default templates do not act on yet, and why not: a pod that
# carries one is told, by a warning that names it, that it has no effect, rather than left to
# think it has.
unhonoured := {}

# METADATA
# title: Warnings for Istio annotations without effect
# description: One for each annotation of unhonoured the pod has, in key order.
unhonoured_warnings := [sprintf("pod annotation %s has no effect with this bundle: %s", [key, why]) |
	some key, why in unhonoured
	lib.pod_annotations[key]
]

# --- sidecar.istio.io/userVolume and userVolumeMount -------------------------------------------------

# The volume sources a pod may add (a host path would give the proxy the node's files).
user_volume_sources := {"emptyDir", "configMap", "secret", "projected", "downwardAPI", "persistentVolumeClaim", "csi", "ephemeral"}

# The fields a volume mount into the proxy may set.
user_volume_mount_fields := {"mountPath", "readOnly", "subPath", "subPathExpr", "mountPropagation"}

# What is wrong with a userVolume or userVolumeMount value: JSON of volume (or mount) name to its
# spec, as Istio reads it; undefined when it is fine.
user_volumes_problem(check, value) := "is not JSON" if {
	not json.is_valid(value)
} else := "is not a JSON object of volume names to their specs" if {
	not user_volumes_shape(json.unmarshal(value))
} else := sprintf("adds volume %s, a name the sidecar or the pod already uses", [name]) if {
	check == "user_volumes"
	some name, _ in json.unmarshal(value)
	taken_volume(name)
} else := sprintf("adds volume %s, whose source is not one of %s", [name, concat(", ", sort(user_volume_sources))]) if {
	check == "user_volumes"
	some name, spec in json.unmarshal(value)
	not user_volume(spec)
} else := sprintf("mounts %s with fields a volume mount into the proxy may not set or without a mountPath (allowed: %s)", [name, concat(", ", sort(user_volume_mount_fields))]) if {
	check == "user_volume_mounts"
	some name, spec in json.unmarshal(value)
	not user_volume_mount(spec)
} else := sprintf("mounts %s, which is neither a volume of the pod nor one of sidecar.istio.io/userVolume", [name]) if {
	check == "user_volume_mounts"
	some name, _ in json.unmarshal(value)
	not mountable(name)
}

user_volumes_shape(volumes) if {
	is_object(volumes)
	count(volumes) > 0
	every name, spec in volumes {
		regex.match(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`, name)
		is_object(spec)
	}
}

user_volume(spec) if {
	not spec.mountPath
	count(spec) == 1
	some source, _ in spec
	source in user_volume_sources
	is_object(spec[source])
}

user_volume_mount(spec) if {
	is_string(spec.mountPath)
	startswith(spec.mountPath, "/")
	every field, _ in spec {
		field in user_volume_mount_fields
	}
}

# The volumes the default templates add.
sidecar_volumes := {"istio-envoy", "istio-data", "istio-podinfo", "istio-token", "custom-bootstrap-volume"}

taken_volume(name) if name in sidecar_volumes

taken_volume(name) if {
	some volume in input.object.spec.volumes
	volume.name == name
}

# A volume name the proxy may mount: one of the pod's, or one a userVolume annotation adds.
mountable(name) if {
	some volume in input.object.spec.volumes
	volume.name == name
}

mountable(name) if {
	raw := lib.pod_annotations["sidecar.istio.io/userVolume"]
	json.is_valid(raw)
	_ = json.unmarshal(raw)[name]
}
