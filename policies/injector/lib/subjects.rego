# Who a request is, for the settings that reserve an override to some subjects: the requesting user
# and its groups (input.request.userInfo), the service accounts involved (the requester, when it is
# one, and the pod's own) and the pod's namespace.
#
# A subjects object lists each kind under its own key, every key optional:
#   {"users": ["alice"], "groups": ["mesh-admins"], "serviceAccounts": ["ci/deployer"], "namespaces": ["istio-system"]}
# A service account is written "namespace/name".
package injector.lib

subject_kinds := {"users", "groups", "serviceAccounts", "namespaces"}

username := name if {
	name := input.request.userInfo.username
	is_string(name)
} else := ""

user_groups := {group | some group in input.request.userInfo.groups; is_string(group)}

# "namespace/name" of the requester, when it is a service account (system:serviceaccount:ns:name).
requester_service_account := sprintf("%s/%s", [parts[2], parts[3]]) if {
	parts := split(username, ":")
	count(parts) == 4
	parts[0] == "system"
	parts[1] == "serviceaccount"
}

# "namespace/name" of the service account the pod runs as; Kubernetes' "default" when it names none.
pod_service_account := sprintf("%s/%s", [namespace_name, name]) if {
	name := input.object.spec.serviceAccountName
	is_string(name)
	name != ""
} else := sprintf("%s/default", [namespace_name])

service_accounts contains requester_service_account

service_accounts contains pod_service_account

# The request as people know it, for messages: user "alice", service account team-a/web, namespace team-a.
subject_description := sprintf("user %q, service account %s and namespace %s", [username, pod_service_account, namespace_name])

# A subjects object this policy can read: an object whose keys are subject kinds and whose values
# are lists.
subjects_well_formed(subjects) if {
	is_object(subjects)
	every kind, names in subjects {
		kind in subject_kinds
		is_array(names)
	}
}

# METADATA
# title: Subject listed
# description: >-
#   True when the request is one of subjects: its user, one of its groups, its service account or
#   the pod's, or the pod's namespace is listed. A malformed subjects object lists nobody.
subject_listed(subjects) if {
	subjects_well_formed(subjects)
	some kind, names in subjects
	some name in names
	is_subject(kind, name)
}

is_subject("users", name) if {
	name != ""
	name == username
}

is_subject("groups", name) if name in user_groups

is_subject("serviceAccounts", name) if name in service_accounts

is_subject("namespaces", name) if name == namespace_name

# A subjects object that restricts nothing: well formed, and every list empty.
subjects_unrestricted(subjects) if {
	subjects_well_formed(subjects)
	every names in subjects {
		count(names) == 0
	}
}

# METADATA
# title: May use an override
# description: >-
#   True when the request may use override name: config overrides[name].subjects is absent, lists
#   nobody, or lists the request. Present but malformed, it lets nobody (a restriction written
#   wrongly must not open the override to everyone).
may_override(name) if not override_subjects_set(name)

may_override(name) if subjects_unrestricted(data.injector.config.overrides[name].subjects)

may_override(name) if subject_listed(data.injector.config.overrides[name].subjects)

override_subjects_set(name) if _ = data.injector.config.overrides[name].subjects
