# Tests for the subjects of a request and the override settings that list them.
package injector.lib_test

import data.injector.lib

# A pod in namespace team-a, created by user, running as service account account ("" names none).
requested_by(user, groups, account) := {
	"request": {"namespace": "team-a", "userInfo": {"username": user, "groups": groups}},
	"object": {"spec": {"serviceAccountName": account}},
	"namespace": {"name": "team-a"},
}

alice := requested_by("alice", ["dev"], "web")

test_subject_facts if {
	lib.username == "alice" with input as alice
	lib.user_groups == {"dev"} with input as alice
	lib.pod_service_account == "team-a/web" with input as alice
	lib.service_accounts == {"team-a/web"} with input as alice
	lib.subject_description == `user "alice", service account team-a/web and namespace team-a` with input as alice
}

test_subject_facts_cope_with_absent_and_odd_fields if {
	lib.username == "" with input as {}
	lib.user_groups == set() with input as {"request": {"userInfo": {"groups": null}}}
	lib.user_groups == {"a"} with input as {"request": {"userInfo": {"groups": ["a", 1]}}}
	lib.pod_service_account == "team-a/default" with input as requested_by("alice", [], "")
	lib.pod_service_account == "/default" with input as {}
}

test_requester_service_account if {
	deployer := requested_by("system:serviceaccount:ci:deployer", [], "")
	lib.requester_service_account == "ci/deployer" with input as deployer
	lib.service_accounts == {"ci/deployer", "team-a/default"} with input as deployer
	not lib.requester_service_account with input as alice
	not lib.requester_service_account with input as requested_by("system:node:worker-1", [], "")
	not lib.requester_service_account with input as requested_by("system:serviceaccount:ci", [], "")
}

test_subject_listed if {
	every subjects in [
		{"users": ["alice"]},
		{"groups": ["dev"]},
		{"serviceAccounts": ["team-a/web"]},
		{"namespaces": ["team-a"]},
		{"users": ["bob"], "groups": [], "namespaces": ["team-a"]},
	] {
		lib.subject_listed(subjects) with input as alice
	}
	every subjects in [
		{},
		{"users": []},
		{"users": ["bob"], "groups": ["ops"], "serviceAccounts": ["team-a/default"], "namespaces": ["team-b"]},
		{"users": "alice"},
		{"user": ["alice"]},
		["alice"],
		null,
	] {
		not lib.subject_listed(subjects) with input as alice
	}
}

test_empty_user_is_never_listed if {
	not lib.subject_listed({"users": [""]}) with input as requested_by("", [], "web")
}

test_subjects_unrestricted if {
	lib.subjects_unrestricted({})
	lib.subjects_unrestricted({"users": [], "groups": []})
	not lib.subjects_unrestricted({"users": ["alice"]})
	not lib.subjects_unrestricted({"users": "alice"})
	not lib.subjects_unrestricted([])
}

test_may_override if {
	lib.may_override("proxy_image") with input as alice
	lib.may_override("proxy_image") with input as alice with data.injector.config.overrides as {}
	lib.may_override("proxy_image") with input as alice with data.injector.config.overrides.proxy_image.subjects as {}
	lib.may_override("proxy_image") with input as alice with data.injector.config.overrides.proxy_image.subjects as {"users": ["alice"]}
	not lib.may_override("proxy_image") with input as alice with data.injector.config.overrides.proxy_image.subjects as {"users": ["bob"]}
	not lib.may_override("proxy_image") with input as alice with data.injector.config.overrides.proxy_image.subjects as null
	not lib.may_override("proxy_image") with input as alice with data.injector.config.overrides.proxy_image.subjects as ["alice"]
}
