package exhibit.controls.leavers_removed

leavers contains lower(u.email) if {
	some r in input.inputs.idp
	some u in r.payload.users.items
	u.status in input.params.statuses
	is_string(u.email)
}

person(system, account) := lower(object.get(object.get(input.mapping, system, {}), account, account))

findings contains {"entity": sprintf("github:%s/%s", [p.org, m.login]), "reason": sprintf("%s left (Okta) but is still a member of %s", [person("github", m.login), p.org])} if {
	some r in input.inputs.github
	p := r.payload
	some m in p.members
	person("github", m.login) in leavers
}

findings contains {"entity": u.arn, "reason": sprintf("%s left (Okta) but is still IAM user %s", [person("aws", u.user_name), u.user_name])} if {
	some r in input.inputs.aws
	some u in r.payload.users
	person("aws", u.user_name) in leavers
}
