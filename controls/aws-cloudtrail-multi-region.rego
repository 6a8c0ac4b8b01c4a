package exhibit.controls.aws_cloudtrail_multi_region

good(t) if {
	t.is_multi_region_trail == true
	t.is_logging == true
	t.log_file_validation_enabled == true
}

findings contains {"entity": p.account_id, "reason": "no multi-region trail is logging with log file validation"} if {
	some r in input.inputs.trails
	p := r.payload
	count([t | some t in p.trails; good(t)]) == 0
}
