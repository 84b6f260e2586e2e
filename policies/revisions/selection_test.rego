package revisions_test

import data.revisions

served := ["default", "1-31", "1-32"]

sel(ns_labels, pod_labels, tags) := s if {
	s := revisions.selection with input as {
		"namespace": {"name": "shop", "labels": ns_labels},
		"pod": {"labels": pod_labels},
		"revisions": served,
		"tags": tags,
	}
}

test_unlabelled_namespace_gets_the_default_revision if {
	s := sel({}, {}, {})
	s.revision == "default"
	s.tag == ""
	not s.label
	s.warnings == []
	s.reasons == [] # a lone default revision needs no explaining
}

test_default_tag_moves_istio_injection if {
	s := sel({"istio-injection": "enabled"}, {}, {"default": "1-31"})
	s.revision == "1-31"
	s.tag == "default"
	s.reasons == ["tag default points at revision 1-31"]
}

test_disabled_switch_still_goes_to_the_default_tag_whose_policy_skips if {
	s := sel({"istio-injection": "disabled", "istio.io/rev": "1-32"}, {}, {})
	s.revision == "default"
	not s.label
	s.warnings == [`namespace "shop" carries both istio-injection and istio.io/rev="1-32": istio-injection decides, as in Istio; remove one of them`]
}

test_namespace_revision_label if {
	s := sel({"istio.io/rev": "1-32"}, {}, {})
	s.revision == "1-32"
	s.tag == ""
	s.label == {"on": "namespace", "key": "istio.io/rev", "value": "1-32"}
}

test_namespace_tag if {
	s := sel({"istio.io/rev": "prod"}, {}, {"prod": "1-31", "canary": "1-32"})
	s.revision == "1-31"
	s.tag == "prod"
}

test_tag_wins_over_a_revision_of_the_same_name if {
	s := sel({"istio.io/rev": "1-31"}, {}, {"1-31": "1-32"})
	s.revision == "1-32"
	s.tag == "1-31"
}

test_our_label_wins_over_istios_on_the_namespace if {
	s := sel({"istio.io/rev": "1-31", "rego-injector.io/rev": "1-32"}, {}, {})
	s.revision == "1-32"
	s.label.key == "rego-injector.io/rev"
	s.warnings == [`namespace "shop" label istio.io/rev="1-31" is not read: rego-injector.io/rev="1-32" decides`]
}

test_namespace_beats_pod_as_in_istio if {
	s := sel({"istio.io/rev": "1-31"}, {"istio.io/rev": "1-32"}, {})
	s.revision == "1-31"
	s.warnings == [`pod label istio.io/rev="1-32" is not read: namespace "shop" label istio.io/rev decides`]
}

test_switch_beats_pod_label if {
	s := sel({"istio-injection": "enabled"}, {"istio.io/rev": "1-32"}, {})
	s.revision == "default"
	s.warnings == [`pod label istio.io/rev="1-32" is not read: namespace "shop" label istio-injection decides`]
}

test_pod_label_in_unlabelled_namespace if {
	s := sel({}, {"istio.io/rev": "canary"}, {"canary": "1-32"})
	s.revision == "1-32"
	s.tag == "canary"
	s.label == {"on": "pod", "key": "istio.io/rev", "value": "canary"}
	s.reasons == [] # the revision's policy names the label
}

test_our_pod_label_wins if {
	s := sel({}, {"istio.io/rev": "1-31", "rego-injector.io/rev": "1-32"}, {})
	s.revision == "1-32"
	s.warnings == [`pod label istio.io/rev="1-31" is not read: label rego-injector.io/rev decides`]
}

test_unknown_name_is_not_injected_and_said if {
	s := sel({"istio.io/rev": "1-99"}, {}, {"prod": "1-31"})
	s.revision == ""
	s.reasons == [`namespace "shop" is labelled istio.io/rev="1-99"`, "no revision or tag is named 1-99"]
	s.warnings == [`namespace "shop" label istio.io/rev names revision "1-99", but no revision or tag has that name (revisions: 1-31, 1-32, default; tags: prod -> 1-31): the pod is not injected`]
}

test_unknown_pod_name if {
	s := sel({}, {"rego-injector.io/rev": "x"}, {})
	s.revision == ""
	contains(s.warnings[0], "pod label rego-injector.io/rev names revision \"x\"")
	contains(s.warnings[0], "tags: none")
}

test_tag_pointing_at_an_unserved_revision if {
	s := sel({"istio.io/rev": "prod"}, {}, {"prod": "1-40"})
	s.revision == ""
	s.tag == "prod"
	s.warnings == ["tag prod points at revision 1-40, which this injector does not serve (it serves 1-31, 1-32, default): the pod is not injected"]
}

test_default_tag_without_a_default_revision if {
	s := revisions.selection with input as {"namespace": {"name": "a", "labels": {}}, "pod": {"labels": {}}, "revisions": [], "tags": {}}
	s.revision == ""
	s.warnings == ["the default tag names revision \"default\", but no revision or tag has that name (revisions: none; tags: none): the pod is not injected"]
}

test_forced_revision if {
	s := revisions.selection with input as {"namespace": {"name": "a", "labels": {"istio.io/rev": "1-31"}}, "pod": {"labels": {"istio.io/rev": "1-31"}}, "revisions": served, "tags": {}, "forced": "1-32"}
	s.revision == "1-32"
	s.label == {"on": "namespace", "key": "istio.io/rev", "value": "1-31"}
	s.forced
	s.reasons == []
	s.warnings == []
}

test_forced_revision_keeps_no_label_where_none_enables if {
	s := revisions.selection with input as {"namespace": {"name": "a", "labels": {}}, "pod": {"labels": {}}, "revisions": served, "tags": {}, "forced": "1-32"}
	s.revision == "1-32"
	not s.label
	s.forced
	s.reasons == []
}

test_forced_unknown if {
	s := revisions.selection with input as {"namespace": {"name": "a", "labels": {}}, "pod": {"labels": {}}, "revisions": served, "tags": {}, "forced": "nope"}
	s.revision == ""
	startswith(s.warnings[0], "--revision names revision \"nope\"")
}

test_missing_input_fields if {
	s := revisions.selection with input as {}
	s.revision == ""
}

test_non_string_labels_are_not_read if {
	s := sel({"istio.io/rev": 3}, {}, {})
	s.revision == "default"
}

# A switch label that neither enables nor disables still chooses the default tag (its bundle then
# does not inject: the switch is not "enabled"), and the revision label beside it is reported.
test_switch_with_another_value_and_a_revision_label if {
	s := sel({"istio-injection": "maybe", "istio.io/rev": "1-32"}, {}, {})
	s.revision == "default"
	not s.label
	count(s.warnings) == 1
}
