package exhibit.controls.aws_config_all_regions

recording(c) if {
	c.enabled == true
	some rec in c.recorders
	rec.recording == true
}

findings contains {"entity": sprintf("%s/%s", [p.account_id, region]), "reason": "no AWS Config recorder is recording"} if {
	some r in input.inputs.monitoring
	p := r.payload
	some region, v in p.regions
	not recording(v.config)
}
