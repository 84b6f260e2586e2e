# The mutating policy: for each pod the webhook (or the offline CLI) sees, decides whether it gets the
# sidecar, from which template variant, with which values, and says why in sentences people can act on.
package injector.mutate

import data.injector.lib
import data.injector.overrides
import data.injector.probes
import data.injector.prometheus

# METADATA
# title: Injection decision
# description: >-
#   {"inject", "variant", "values", "reasons", "warnings"} for the pod in input, with "code" on a
#   skip, "refused_overrides" and "honoured_overrides" once the pod is selected, and "deny" when a
#   refused override refuses the pod. Defined for every input, with exactly one value and at least one reason. The checks run
#   in priority order: the first that skips the pod decides.
decision := skip(precondition.code, [precondition.reason], []) if {
	precondition := precondition_skip
} else := skip(selection.code, selection.reasons, array.concat(lib.switch_warnings, leftover_warnings)) if {
	not selection.inject
} else := unknown_template if {
	count(overrides.unknown_templates) > 0
} else := refusal if {
	lib.refusal_mode == "deny"
	count(overrides.refused) > 0
} else := injection

# Reached only if a rule above is left undefined (say, by a modified bundle): the decision stays defined.
default decision := {
	"inject": false,
	"code": "undecided",
	"variant": "",
	"values": {},
	"reasons": ["the injection policy reached no decision for this pod; not injecting"],
	"warnings": [],
}

# A skip carries a short code from a fixed vocabulary (docs/policy-authors.md), for metrics.
skip(code, reasons, warnings) := {
	"inject": false,
	"code": code,
	"variant": "",
	"values": {},
	"reasons": reasons,
	"warnings": warnings,
}

injection := object.union(
	{
		"inject": true,
		"variant": variant.name,
		"values": object.union_n(flatten([
			[overrides.base_values, revision_values],
			[override.values | some override in overrides.applied],
			[probes.values, prometheus.values, {"proxy": {"native": placement.native}}, before_proxy.values],
			[turned_off.values | some turned_off in template_turned_off],
		])),
		"reasons": flatten([
			selection.reasons,
			reinjection_reasons,
			[variant.reason],
			[override.reason | some override in overrides.applied],
			sort(probes.reasons),
			sort(prometheus.reasons),
			[turned_off.reason | some turned_off in template_turned_off],
			[placement.reason],
			before_proxy.reasons,
		]),
		"warnings": flatten([lib.switch_warnings, overrides.warnings, sort(probes.warnings), sort(prometheus.warnings), overrides.unhonoured_warnings, before_proxy.warnings]),
		"refused_overrides": overrides.refused,
		"honoured_overrides": overrides.honoured,
	},
	template_list,
)

# The templates of an injection when there are several (Istio's inject.istio.io/templates): the
# engine renders them in order, the variant first, and merges each over the ones before.
template_list := {"templates": variant.templates} if {
	count(variant.templates) > 1
} else := {}

# A pod that would be injected but asks for an override it may not use, with config
# overrides.refused: deny. The engine refuses it with the deny messages.
refusal := {
	"inject": false,
	"code": "override_refused",
	"variant": "",
	"values": {},
	"reasons": array.concat(selection.reasons, ["config overrides.refused is deny: a pod that asks for an override it may not use is refused"]),
	"warnings": lib.switch_warnings,
	"deny": [refused.reason | some refused in overrides.refused],
	"refused_overrides": overrides.refused,
}

# A pod that names a template the bundle does not have is refused, as Istio refuses it: the
# sidecar it asked for cannot be made, and another would not be what it asked for.
unknown_template := {
	"inject": false,
	"code": "unknown_template",
	"variant": "",
	"values": {},
	"reasons": array.concat(selection.reasons, [overrides.variant_refusal]),
	"warnings": lib.switch_warnings,
	"deny": [overrides.variant_refusal],
	"refused_overrides": overrides.refused,
}

flatten(lists) := [item | some list in lists; some item in list]

# METADATA
# title: Checks that skip a pod whatever it asks for
# description: >-
#   The reason the pod is skipped before its own choice and the defaults are looked at; undefined when
#   none applies. In order: operation, excluded namespace, namespace switched off, hostNetwork, an
#   injection status (same bundle revision and revision name, or unreadable), Istio's own injection.
precondition_skip := {"code": "operation", "reason": "the request names no operation: pods are injected on CREATE only"} if {
	lib.operation == ""
} else := {"code": "operation", "reason": sprintf("operation %s: pods are injected on CREATE only", [lib.operation])} if {
	lib.operation != "CREATE"
} else := {"code": "excluded_namespace", "reason": sprintf("namespace %q is excluded from injection", [lib.namespace_name])} if {
	lib.namespace_name in lib.excluded_namespaces
} else := {"code": "excluded_namespace", "reason": sprintf("namespace %q is the injector's own namespace and is excluded from injection", [lib.namespace_name])} if {
	lib.injector_namespace != ""
	lib.namespace_name == lib.injector_namespace
} else := {"code": "namespace_disabled", "reason": sprintf("namespace %q is labelled %s=disabled", [lib.namespace_name, lib.namespace_switch.key])} if {
	lib.namespace_disabled
} else := {"code": "host_network", "reason": "pod uses hostNetwork: its traffic cannot be redirected through a sidecar"} if {
	lib.host_network
} else := {"code": "already_injected", "reason": sprintf("pod is already injected at revision %q", [lib.revision])} if {
	lib.status.revision == lib.revision
	lib.status_rev == lib.serving_rev
} else := {"code": "status_unreadable", "reason": sprintf(
	"pod annotation %s is not the status this injector writes (a JSON object with a revision, and lists of names): the injected containers cannot be safely stripped and re-injected, so the pod is left as it is",
	[lib.status_annotation],
)} if {
	lib.status_invalid
} else := {"code": "istio_injected", "reason": sprintf("pod is already injected by Istio (it has annotation %s)", [lib.istio_status_annotation])} if {
	lib.istio_injected
}

# METADATA
# title: The pod's own choice, then the defaults
# description: >-
#   {"inject", "reasons"}: an explicit opt-out or opt-in decides; otherwise the namespace must be
#   enabled, never_inject_selectors beat always_inject_selectors, and the global policy decides the rest.
selection := {"inject": false, "code": "opted_out", "reasons": [sprintf("%s opts the pod out", [lib.switch_string(lib.pod_switch)])]} if {
	lib.opted_out
} else := {"inject": true, "reasons": [sprintf("%s opts the pod in", [lib.switch_string(lib.pod_switch)])]} if {
	lib.opted_in
} else := {"inject": false, "code": "namespace_not_enabled", "reasons": [namespace_not_enabled_reason]} if {
	not lib.namespace_enabled
} else := {"inject": false, "code": "never_inject_selector", "reasons": [namespace_enabled_reason, selector_reason("never_inject_selectors", index, lib.never_inject_selectors)]} if {
	index := first_match(lib.never_inject_selectors)
} else := {"inject": true, "reasons": [namespace_enabled_reason, selector_reason("always_inject_selectors", index, lib.always_inject_selectors)]} if {
	index := first_match(lib.always_inject_selectors)
} else := {"inject": true, "reasons": [namespace_enabled_reason, "the global injection policy is enabled: pods in enabled namespaces are injected unless they opt out"]} if {
	lib.global_policy == "enabled"
} else := {"inject": false, "code": "policy_disabled", "reasons": [namespace_enabled_reason, policy_disabled_reason]}

namespace_enabled_reason := sprintf("namespace %q is labelled %s=enabled%s", [lib.namespace_name, lib.namespace_switch.key, forced_string]) if {
	lib.namespace_switch
} else := sprintf("%s enables injection%s", [revision_label_string, forced_string]) if {
	input.revision.forced == true
} else := sprintf("%s selects revision %s%s", [revision_label_string, lib.revision_name, tag_string])

forced_string := sprintf("; --revision chooses revision %s%s", [lib.revision_name, tag_string]) if {
	input.revision.forced == true
} else := ""

revision_label_string := sprintf("namespace %q label %s=%q", [lib.namespace_name, lib.revision_label.key, lib.revision_label.value]) if {
	lib.revision_label.on == "namespace"
} else := sprintf("pod label %s=%q", [lib.revision_label.key, lib.revision_label.value]) if {
	lib.revision_label.on == "pod"
} else := sprintf("%s %s", [lib.revision_label.key, lib.revision_label.value])

tag_string := sprintf(" through tag %s", [input.revision.tag]) if {
	is_string(input.revision.tag)
	input.revision.tag != ""
} else := ""

# The revision serving the pod names itself in Istio's istio.io/rev annotation and status, unless
# the bundle's values name it; without a revision, "default", as Istio's control plane without one.
revision_values := {} if {
	is_string(lib.values.revisionName)
} else := {"revisionName": lib.revision_name} if {
	lib.revision_name
} else := {"revisionName": "default"}

namespace_not_enabled_reason := sprintf(
	"namespace %q is not labelled %s (its label %s=%q neither enables nor disables injection)",
	[lib.namespace_name, enabling_labels, lib.namespace_switch.key, lib.namespace_switch.value],
) if {
	lib.namespace_switch
} else := sprintf(
	"namespace %q is not labelled %s (its label istio.io/rev=%q names a revision, but no revision selection reached this policy: input.revision is absent)",
	[lib.namespace_name, enabling_labels, lib.namespace_labels["istio.io/rev"]],
) if {
	is_string(lib.namespace_labels["istio.io/rev"])
} else := sprintf("namespace %q is not labelled %s", [lib.namespace_name, enabling_labels])

# "istio-injection=enabled or rego-injector.io/inject=enabled"
enabling_labels := concat(" or ", [sprintf("%s=enabled", [key]) | some key in lib.namespace_label_keys]) if {
	count(lib.namespace_label_keys) > 0
} else := "with an injection label (config namespace_labels lists none)"

policy_disabled_reason := sprintf(
	"the global injection policy is disabled: pods in namespace %q are injected only when they opt in with %s",
	[lib.namespace_name, opt_in_hint],
) if {
	lib.global_policy == "disabled"
} else := sprintf(
	"the global injection policy has unknown value %q and is treated as disabled: pods in namespace %q are injected only when they opt in with %s",
	[lib.global_policy, lib.namespace_name, opt_in_hint],
)

opt_in_hint := sprintf("label %s=\"true\"", [lib.pod_keys[0]]) if {
	count(lib.pod_keys) > 0
} else := "an opt-in label (config pod_keys lists none)"

# Index of the first selector in selectors that matches the pod's labels; undefined when none does.
first_match(selectors) := matches[0] if {
	matches := [index | some index, selector in selectors; lib.selector_matches(selector, lib.pod_labels)]
}

selector_reason(setting, index, selectors) := sprintf(
	"pod labels match %s[%d] (%s)",
	[setting, index, lib.selector_string(selectors[index])],
)

# Left-over injected containers of another revision on a pod that is no longer injected.
leftover_warnings := [sprintf(
	"pod carries containers injected at revision %q but is no longer selected for injection: they are left as they are",
	[lib.status.revision],
)] if {
	lib.status
} else := []

reinjection_reasons := [sprintf(
	"re-injecting: pod was injected by revision %s (bundle revision %q), it is now answered by revision %s",
	[lib.status_rev, lib.status.revision, lib.serving_rev],
)] if {
	lib.status_rev != lib.serving_rev
} else := [sprintf(
	"re-injecting: pod was injected at revision %q, bundle is now %q",
	[lib.status.revision, lib.revision],
)] if {
	lib.status
} else := []

# METADATA
# title: Template variant
# description: >-
#   {"name", "reason"}: a variant the pod asks for by annotation (when the request is allowed:
#   overrides.rego), else the first image rule a container matches, else sidecar. Where the proxy
#   runs (a native sidecar or an ordinary container) is not a variant: see placement.
variant := {"name": names[0], "templates": names, "reason": sprintf("pod annotation %s=%q asks for variant %s", [request.key, request.value, names[0]])} if {
	request := overrides.requested_variant
	not overrides.variant_refusal
	names := overrides.requested_templates
	count(names) == 1
} else := {"name": names[0], "templates": names, "reason": sprintf("pod annotation %s=%q asks for templates %s, merged in that order", [request.key, request.value, concat(", ", names)])} if {
	request := overrides.requested_variant
	not overrides.variant_refusal
	names := overrides.requested_templates
} else := {"name": match.variant, "templates": [match.variant], "reason": sprintf("container %q image %q matches %q: variant %s", [match.container, match.image, match.pattern, match.variant])} if {
	match := image_match
} else := {"name": "sidecar", "templates": ["sidecar"], "reason": "no variant requested and no image rule matched: default variant sidecar"}

native_annotation := "sidecar.istio.io/nativeSidecar"

# METADATA
# title: Where the proxy runs
# description: >-
#   {"native", "reason"}: true puts istio-proxy among the init containers with restartPolicy:
#   Always (a Kubernetes native sidecar: it starts before the app, stops after it, and lets Jobs
#   finish), false among the containers. As Istio reads sidecar.istio.io/nativeSidecar: "false"
#   says no, any other non-empty value yes; without it, run-to-completion owners get a native
#   sidecar, and other pods the bundle's native_sidecars setting. A pod that declares its own
#   istio-proxy (to override some of its fields) keeps it where it declared it.
placement := {"native": false, "reason": sprintf("the pod declares its own %s container among its containers: it stays there", [lib.proxy_name])} if {
	some container in lib.containers
	container.name == lib.proxy_name
} else := {"native": true, "reason": sprintf("the pod declares its own %s container among its init containers: it stays there, a native sidecar", [lib.proxy_name])} if {
	some container in lib.init_containers
	container.name == lib.proxy_name
} else := {"native": false, "reason": sprintf("pod annotation %s=\"false\": istio-proxy runs as an ordinary container", [native_annotation])} if {
	lib.pod_annotations[native_annotation] == "false"
} else := {"native": true, "reason": sprintf("pod annotation %s=%q: istio-proxy runs as a native sidecar", [native_annotation, value])} if {
	value := lib.pod_annotations[native_annotation]
	is_string(value)
	value != ""
} else := {"native": true, "reason": sprintf("owner %s runs to completion: istio-proxy runs as a native sidecar", [lib.owner_string])} if {
	lib.owner.kind in lib.native_owner_kinds
} else := {"native": true, "reason": "config native_sidecars is true: istio-proxy runs as a native sidecar (an init container with restartPolicy: Always)"} if {
	lib.native_sidecars == true
} else := {"native": false, "reason": "config native_sidecars is false: istio-proxy runs as an ordinary container"}

# What a template turns off whatever the pod or the bundle says (config template_settings): the
# setting, where it is in values, and the effect, for reasons.
template_switches := {
	"rewrite_probes": {"values": {"probes": {"rewrite": false}}, "effect": "probe rewriting"},
	"merge_metrics": {"values": {"prometheus": {"merge": false}}, "effect": "metrics merging"},
}

# METADATA
# title: Settings the pod's templates turn off
# description: >-
#   {"values", "reason"} for each setting a template of the pod turns off (config
#   template_settings, say for the proxyless gRPC templates, which run no Envoy to send probes
#   or metrics through), in template and then setting order.
template_turned_off := [{"values": switch.values, "reason": sprintf("template %s turns %s off (config template_settings)", [name, switch.effect])} |
	some name in variant.templates
	some key, switch in template_switches
	lib.template_settings[name][key] == false
]

before_proxy_annotation := "sidecar.istio.io/init-containers-before-proxy"

# METADATA
# title: The pod's init containers that run before the proxy
# description: >-
#   {"values", "reasons", "warnings"}: as Istio, the names of config init_containers_before_proxy
#   and then of the pod's annotation sidecar.istio.io/init-containers-before-proxy (comma lists),
#   each once, that are init containers of the pod, run after istio-init and before a native
#   sidecar proxy, in that order (values init.containersBeforeProxy). A name the annotation gives
#   that the pod lacks, or the annotation on a pod whose proxy is not a native sidecar, is a warning.
before_proxy := {
	"values": {"init": {"containersBeforeProxy": names}},
	"reasons": [sprintf("init containers %s run before %s (%s)", [concat(", ", names), lib.proxy_name, before_proxy_sources])],
	"warnings": before_proxy_missing,
} if {
	placement.native
	names := [name | some name in before_proxy_requested; name in before_proxy_present]
	count(names) > 0
} else := {"values": {}, "reasons": [], "warnings": [sprintf(
	"pod annotation %s has no effect: %s is not a native sidecar, so no init container runs after it",
	[before_proxy_annotation, lib.proxy_name],
)]} if {
	not placement.native
	count(comma_list(lib.pod_annotations[before_proxy_annotation])) > 0
} else := {"values": {}, "reasons": [], "warnings": before_proxy_missing}

before_proxy_requested := [name |
	some i, name in joined
	not name in array.slice(joined, 0, i)
] if {
	joined := array.concat(comma_list(lib.init_containers_before_proxy), comma_list(object.get(lib.pod_annotations, before_proxy_annotation, "")))
}

before_proxy_present := {c.name | some c in lib.init_containers; c.name != lib.proxy_name}

before_proxy_sources := concat(" and ", [source |
	some source, present in {
		"config init_containers_before_proxy": count(comma_list(lib.init_containers_before_proxy)) > 0,
		sprintf("pod annotation %s", [before_proxy_annotation]): count(comma_list(object.get(lib.pod_annotations, before_proxy_annotation, ""))) > 0,
	}
	present
])

before_proxy_missing := [sprintf("pod annotation %s names init container %q, which the pod does not have: ignored", [before_proxy_annotation, name]) |
	some name in comma_list(object.get(lib.pod_annotations, before_proxy_annotation, ""))
	not name in before_proxy_present
]

# The non-empty items of a comma list, spaces trimmed; none for anything but a string.
comma_list(value) := [item | some part in split(value, ","); item := trim_space(part); item != ""] if {
	is_string(value)
} else := []

# The first image rule a container matches: config image_variants in order, then each rule's patterns
# in order, then containers in order. A null delimiter list lets `*` match across `/` and `.`.
image_match := matches[0] if {
	matches := [{"variant": rule.variant, "pattern": pattern, "container": container.name, "image": container.image} |
		some rule in image_rules
		may_match(rule)
		some pattern in rule.patterns
		some container in lib.containers
		is_string(container.image)
		glob.match(pattern, null, container.image)
	]
}

# The well-formed rules of image_variants, each with one glob that matches whatever any of its
# patterns matches (and maybe more): the patterns as alternatives.
image_rules := [{"variant": rule.variant, "patterns": patterns, "any": sprintf("{%s}", [concat(",", patterns)])} |
	some rule in lib.image_variants
	is_string(rule.variant)
	patterns := [pattern | some pattern in rule.images; is_string(pattern)]
	count(patterns) > 0
]

# A rule may match when one container's image matches its alternatives. Most pods match no rule, and
# this costs one glob per container instead of one per pattern and container; the patterns are then
# tried one by one, in order, to find the first that matches. An image with a comma, which would
# split the alternatives, always goes the long way.
may_match(rule) if {
	some container in lib.containers
	is_string(container.image)
	glob.match(rule.any, null, container.image)
}

may_match(_) if {
	some container in lib.containers
	contains(container.image, ",")
}
