# Tests for Kubernetes label selector matching and printing.
package injector.lib_test

import data.injector.lib

labels := {"app": "web", "tier": "frontend", "canary": "true"}

test_empty_selector_matches_everything if {
	lib.selector_matches({}, labels)
	lib.selector_matches({}, {})
	lib.selector_string({}) == "everything"
}

test_selector_that_is_not_an_object_matches_nothing if {
	not lib.selector_matches(null, labels)
	not lib.selector_matches("app=web", labels)
}

test_match_labels_all_must_match if {
	lib.selector_matches({"matchLabels": {"app": "web", "tier": "frontend"}}, labels)
	not lib.selector_matches({"matchLabels": {"app": "web", "tier": "backend"}}, labels)
	not lib.selector_matches({"matchLabels": {"app": "web"}}, {})
}

test_in if {
	selector := {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["frontend", "backend"]}]}
	lib.selector_matches(selector, labels)
	not lib.selector_matches(selector, {"tier": "db"})
	not lib.selector_matches(selector, {})
	not lib.selector_matches({"matchExpressions": [{"key": "tier", "operator": "In"}]}, labels)
}

test_not_in_matches_missing_keys if {
	selector := {"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["frontend"]}]}
	not lib.selector_matches(selector, labels)
	lib.selector_matches(selector, {"tier": "db"})
	lib.selector_matches(selector, {})
}

test_exists_and_does_not_exist if {
	exists := {"matchExpressions": [{"key": "canary", "operator": "Exists"}]}
	absent := {"matchExpressions": [{"key": "canary", "operator": "DoesNotExist"}]}
	lib.selector_matches(exists, labels)
	not lib.selector_matches(exists, {"app": "web"})
	not lib.selector_matches(absent, labels)
	lib.selector_matches(absent, {"app": "web"})
}

test_requirement_without_key_matches_nothing if {
	not lib.selector_matches({"matchExpressions": [{"operator": "NotIn", "values": ["a"]}]}, labels)
	not lib.selector_matches({"matchExpressions": [{"operator": "DoesNotExist"}]}, labels)
	not lib.selector_matches({"matchExpressions": [{"key": 1, "operator": "DoesNotExist"}]}, labels)
}

test_unknown_operator_matches_nothing if {
	not lib.selector_matches({"matchExpressions": [{"key": "replicas", "operator": "Gt", "values": ["1"]}]}, {"replicas": "3"})
}

test_labels_and_expressions_must_all_match if {
	selector := {
		"matchLabels": {"app": "web"},
		"matchExpressions": [
			{"key": "tier", "operator": "In", "values": ["frontend"]},
			{"key": "legacy", "operator": "DoesNotExist"},
		],
	}
	lib.selector_matches(selector, labels)
	not lib.selector_matches(selector, object.union(labels, {"legacy": "yes"}))
	not lib.selector_matches(selector, object.union(labels, {"app": "api"}))
}

test_malformed_parts_are_ignored if {
	lib.selector_matches({"matchLabels": "app=web", "matchExpressions": "tier"}, labels)
}

test_selector_string if {
	selector := {
		"matchLabels": {"tier": "db", "app": "web"},
		"matchExpressions": [
			{"key": "zone", "operator": "In", "values": ["a", "b"]},
			{"key": "env", "operator": "NotIn", "values": ["dev"]},
			{"key": "canary", "operator": "Exists"},
			{"key": "legacy", "operator": "DoesNotExist"},
			{"key": "replicas", "operator": "Gt", "values": ["1"]},
		],
	}
	lib.selector_string(selector) == concat(",", [
		"app=web",
		"tier=db",
		"zone in (a,b)",
		"env notin (dev)",
		"canary",
		"!legacy",
		`{"key": "replicas", "operator": "Gt", "values": ["1"]}`,
	])
}
