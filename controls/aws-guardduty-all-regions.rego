package exhibit.controls.aws_guardduty_all_regions

enabled(g) if {
	g.enabled == true
	some d in g.detectors
	d.status == "ENABLED"
}

findings contains {"entity": sprintf("%s/%s", [p.account_id, region]), "reason": "no enabled GuardDuty detector"} if {
	some r in input.inputs.monitoring
	p := r.payload
	some region, v in p.regions
	not enabled(v.guardduty)
}
