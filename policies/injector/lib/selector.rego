# Kubernetes label selectors (matchLabels and matchExpressions) for the injection policies: matching a
# pod's labels, and printing a selector the way kubectl does, for reasons people read.
package injector.lib

# METADATA
# title: Label selector match
# description: >-
#   True when labels satisfy selector with Kubernetes semantics: every matchLabels pair and every
#   matchExpressions requirement (In, NotIn, Exists, DoesNotExist) must hold, so an empty selector
#   matches every pod. A selector that is not an object, or has an unknown operator, matches nothing.
selector_matches(selector, labels) if {
	is_object(selector)
	every key, value in selector_match_labels(selector) {
		labels[key] == value
	}
	every requirement in selector_match_expressions(selector) {
		requirement_matches(requirement, labels)
	}
}

selector_match_labels(selector) := pairs if {
	pairs := selector.matchLabels
	is_object(pairs)
} else := {}

selector_match_expressions(selector) := requirements if {
	requirements := selector.matchExpressions
	is_array(requirements)
} else := []

requirement_matches(requirement, labels) if {
	requirement.operator == "In"
	label_in_values(requirement, labels)
}

# Written with a helper: `not labels[key] in values` would be undefined, not true, for a missing key,
# because OPA evaluates the ref before the negation.
requirement_matches(requirement, labels) if {
	requirement.operator == "NotIn"
	is_string(requirement.key)
	not label_in_values(requirement, labels)
}

requirement_matches(requirement, labels) if {
	requirement.operator == "Exists"
	has_key(labels, requirement.key)
}

requirement_matches(requirement, labels) if {
	requirement.operator == "DoesNotExist"
	is_string(requirement.key)
	not has_key(labels, requirement.key)
}

label_in_values(requirement, labels) if labels[requirement.key] in requirement_values(requirement)

requirement_values(requirement) := values if {
	values := requirement.values
	is_array(values)
} else := []

# The values of an In or NotIn requirement as text, for selector_string.
requirement_values_string(requirement) := concat(",", [sprintf("%v", [value]) | some value in requirement_values(requirement)])

has_key(obj, key) if _ = obj[key]

# METADATA
# title: Label selector as text
# description: >-
#   The selector in kubectl's notation ("app=web,tier in (db,cache),!canary"); "everything" for the
#   empty selector.
selector_string(selector) := text if {
	terms := array.concat(
		[sprintf("%s=%s", [key, value]) | some key, value in selector_match_labels(selector)],
		[requirement_string(requirement) | some requirement in selector_match_expressions(selector)],
	)
	count(terms) > 0
	text := concat(",", terms)
} else := "everything"

requirement_string(requirement) := sprintf("%s in (%s)", [requirement.key, requirement_values_string(requirement)]) if {
	requirement.operator == "In"
} else := sprintf("%s notin (%s)", [requirement.key, requirement_values_string(requirement)]) if {
	requirement.operator == "NotIn"
} else := sprintf("%s", [requirement.key]) if {
	requirement.operator == "Exists"
} else := sprintf("!%s", [requirement.key]) if {
	requirement.operator == "DoesNotExist"
} else := sprintf("%v", [requirement])
