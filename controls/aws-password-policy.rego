package exhibit.controls.aws_password_policy

required := ["require_symbols", "require_numbers", "require_uppercase_characters", "require_lowercase_characters"]

findings contains {"entity": p.account_id, "reason": "no password policy is set"} if {
	some r in input.inputs.policy
	p := r.payload
	not p.configured == true
}

findings contains {"entity": p.account_id, "reason": sprintf("minimum password length is %v, below %v", [pp.minimum_password_length, input.params.minimum_length])} if {
	some r in input.inputs.policy
	p := r.payload
	pp := p.password_policy
	is_object(pp)
	not at_least(pp.minimum_password_length, input.params.minimum_length)
}

findings contains {"entity": p.account_id, "reason": sprintf("`%s` is not set", [k])} if {
	some r in input.inputs.policy
	p := r.payload
	pp := p.password_policy
	is_object(pp)
	some k in required
	not pp[k] == true
}

findings contains {"entity": p.account_id, "reason": sprintf("password reuse prevention is %v, below %v", [pp.password_reuse_prevention, input.params.reuse_prevention])} if {
	some r in input.inputs.policy
	p := r.payload
	pp := p.password_policy
	is_object(pp)
	not at_least(pp.password_reuse_prevention, input.params.reuse_prevention)
}

at_least(v, min) if {
	is_number(v)
	v >= min
}
