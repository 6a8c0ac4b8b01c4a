package exhibit.controls.okta_mfa_enrolled

findings contains {"entity": u.login, "reason": sprintf("%s user without an active MFA factor", [u.status])} if {
	some r in input.inputs.users
	some u in r.payload.users.items
	u.status in input.params.statuses
	count([f | some f in u.factors; f.status == "ACTIVE"]) == 0
}

findings contains {"entity": u.login, "reason": "the user's factors could not be read"} if {
	some r in input.inputs.users
	some u in r.payload.users.items
	u.status in input.params.statuses
	not is_array(u.factors)
}
