package exhibit.controls.pagerduty_escalation_policies

pages_someone(ep) if {
	some rule in ep.rules
	count(rule.targets) > 0
}

covered(p, s) if {
	some ep in p.escalation_policies.items
	ep.id == s.escalation_policy_id
	pages_someone(ep)
}

covered(p, s) if {
	some ep in p.escalation_policies.items
	s.id in ep.services
	pages_someone(ep)
}

findings contains {"entity": s.id, "reason": sprintf("service \"%s\" is on no escalation policy that pages someone", [s.name])} if {
	some r in input.inputs.pagerduty
	p := r.payload
	some s in p.services.items
	s.status != "disabled"
	not covered(p, s)
}
