package exhibit.controls.okta_suspended_no_sessions

findings contains {"entity": u.login, "reason": sprintf("%s since %s, but signed in at %s", [u.status, u.status_changed, u.last_login])} if {
	some r in input.inputs.users
	some u in r.payload.users.items
	u.status in input.params.statuses
	is_string(u.last_login)
	is_string(u.status_changed)
	time.parse_rfc3339_ns(u.last_login) > time.parse_rfc3339_ns(u.status_changed)
}
