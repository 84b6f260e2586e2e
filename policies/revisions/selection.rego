# Which revision answers a pod: the revision or tag its namespace's or its own labels name, as
# Istio's webhook configurations route a pod to one revision. The engine evaluates this policy
# before any bundle and gives the chosen revision's policy its answer as input.revision.
#
# Input: {"namespace": {"name", "labels"}, "pod": {"labels"}, "revisions": [names served],
#         "tags": {tag: revision}, "forced": name given on the command line, or absent}
#
# The engine remembers answers by the namespace's name, its labels named in switch_keys and
# rev_keys (it reads both rules from this policy), the pod's labels named in rev_keys, the tags,
# the revisions and "forced" (Router.key in engine/revisions): a rule reading anything else must
# be added there too.
package revisions

# The namespace labels that switch injection on or off for the default tag; either on a namespace
# decides, and no revision label is read.
switch_keys := ["istio-injection", "rego-injector.io/inject"]

# The revision labels, ours first: on one object, ours wins over Istio's.
rev_keys := ["rego-injector.io/rev", "istio.io/rev"]

default_tag := "default"

namespace_labels := object.get(input, ["namespace", "labels"], {})

pod_labels := object.get(input, ["pod", "labels"], {})

namespace_name := object.get(input, ["namespace", "name"], "")

tags := object.get(input, "tags", {})

served := {name | some name in object.get(input, "revisions", [])}

# The first switch key the namespace carries, as {"key", "value"}.
namespace_switch := found[0] if {
	found := [{"key": key, "value": value} | some key in switch_keys; value := namespace_labels[key]]
}

# The revision labels an object carries, ours first, as {"on", "key", "value"}.
rev_labels(on, labels) := [{"on": on, "key": key, "value": value} |
	some key in rev_keys
	value := labels[key]
	is_string(value)
]

namespace_rev := rev_labels("namespace", namespace_labels)

pod_rev := rev_labels("pod", pod_labels)

# METADATA
# title: What names the revision
# description: >-
#   {"name", "label", "reason", "forced"}: the name asked for and the label that asked (absent for
#   the default tag). Istio's precedence: a namespace switch label, then the namespace's revision
#   label, then the pod's; without any, the default tag.
#   --revision (input.forced) replaces the name only: the label, if any, still says whether the
#   pod's labels enable injection at all.
choice := object.union(labelled, {"name": input.forced, "reason": sprintf("--revision %s chooses it", [input.forced]), "forced": true}) if {
	is_string(input.forced)
	input.forced != ""
} else := labelled

labelled := {"name": default_tag, "reason": sprintf("namespace %q is labelled %s=%q: the %s tag", [namespace_name, namespace_switch.key, namespace_switch.value, default_tag])} if {
	namespace_switch
} else := {"name": namespace_rev[0].value, "label": namespace_rev[0], "reason": label_reason(namespace_rev[0])} if {
	count(namespace_rev) > 0
} else := {"name": pod_rev[0].value, "label": pod_rev[0], "reason": label_reason(pod_rev[0])} if {
	count(pod_rev) > 0
} else := {"name": default_tag, "reason": sprintf("neither namespace %q nor the pod names a revision: the %s tag", [namespace_name, default_tag])}

label_reason(label) := sprintf("namespace %q is labelled %s=%q", [namespace_name, label.key, label.value]) if {
	label.on == "namespace"
} else := sprintf("pod label %s=%q", [label.key, label.value])

# METADATA
# title: The revision chosen
# description: >-
#   {"revision", "tag", "reasons", "warnings"} with "label" when a revision label chose it (under
#   --revision: when one would have), and "forced": true under --revision.
#   "revision" is "" when the name matches no tag and no served revision: the pod is not injected.
#   A tag wins over a revision of the same name, as Istio's default tag does.
selection := object.union_n([
	{
		"revision": resolved.revision,
		"tag": resolved.tag,
		"reasons": reasons,
		"warnings": array.concat(ignored_warnings, resolved.warnings),
	},
	{"label": choice.label | choice.label},
	{"forced": true | choice.forced},
])

# The reasons worth adding to the served revision's own: why no revision answers; or, when the
# default tag led to a revision, which. A revision label that chose is named by the revision's
# policy (input.revision.label), and a lone default revision needs no explaining.
reasons := [choice.reason, resolved.reason] if {
	resolved.revision == ""
} else := [resolved.reason] if {
	not choice.label
	not choice.forced
	resolved.tag != ""
} else := []

resolved := {"revision": rev, "tag": choice.name, "reason": sprintf("tag %s points at revision %s", [choice.name, rev]), "warnings": []} if {
	rev := tags[choice.name]
	rev in served
} else := {"revision": "", "tag": choice.name, "reason": sprintf("tag %s points at revision %s", [choice.name, rev]), "warnings": [sprintf(
	"tag %s points at revision %s, which this injector does not serve (it serves %s): the pod is not injected",
	[choice.name, rev, served_string],
)]} if {
	rev := tags[choice.name]
} else := {"revision": choice.name, "tag": "", "reason": sprintf("revision %s is served", [choice.name]), "warnings": []} if {
	choice.name in served
} else := {"revision": "", "tag": "", "reason": sprintf("no revision or tag is named %s", [choice.name]), "warnings": [sprintf(
	"%s names revision %q, but no revision or tag has that name (revisions: %s; tags: %s): the pod is not injected",
	[choice_subject, choice.name, served_string, tags_string],
)]}

choice_subject := "--revision" if {
	choice.forced
} else := sprintf("namespace %q label %s", [namespace_name, choice.label.key]) if {
	choice.label.on == "namespace"
} else := sprintf("pod label %s", [choice.label.key]) if {
	choice.label.on == "pod"
} else := sprintf("the %s tag", [default_tag])

served_string := concat(", ", sort(served)) if count(served) > 0

else := "none"

tags_string := concat(", ", sort([sprintf("%s -> %s", [tag, rev]) | some tag, rev in tags])) if count(tags) > 0

else := "none"

# Labels that did not decide, and would surprise whoever set them.
ignored_warnings := [msg | some msg in ignored]

ignored contains sprintf(
	"namespace %q carries both %s and %s=%q: %s decides, as in Istio; remove one of them",
	[namespace_name, namespace_switch.key, label.key, label.value, namespace_switch.key],
) if {
	namespace_switch
	some label in namespace_rev
}

ignored contains sprintf(
	"pod label %s=%q is not read: %s",
	[label.key, label.value, decided_by],
) if {
	not input.forced
	some label in pod_rev
	label.value != choice.name
	decided_by := pod_ignored_because
}

pod_ignored_because := sprintf("namespace %q label %s decides", [namespace_name, namespace_switch.key]) if {
	namespace_switch
} else := sprintf("namespace %q label %s decides", [namespace_name, namespace_rev[0].key]) if {
	count(namespace_rev) > 0
} else := sprintf("label %s decides", [pod_rev[0].key])

ignored contains sprintf(
	"namespace %q label %s=%q is not read: %s=%q decides",
	[namespace_name, label.key, label.value, namespace_rev[0].key, namespace_rev[0].value],
) if {
	not namespace_switch
	some label in namespace_rev
	label.value != namespace_rev[0].value
}
