package exhibit.controls.github_org_2fa

findings contains {"entity": p.org, "reason": reason(p.settings.two_factor_requirement_enabled)} if {
	some r in input.inputs.org
	p := r.payload
	not p.settings.two_factor_requirement_enabled == true
}

reason(false) := "two-factor authentication is not required"

reason(v) := "the token cannot see whether two-factor authentication is required" if v != false
