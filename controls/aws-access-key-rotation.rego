package exhibit.controls.aws_access_key_rotation

day_ns := 86400000000000

findings contains {"entity": sprintf("%s#key%d", [row.arn, n]), "reason": sprintf("active access key %d last rotated %s, over %d days ago", [n, rotated, input.params.max_age_days])} if {
	some r in input.inputs.report
	some row in r.payload.rows
	some n in [1, 2]
	row[sprintf("access_key_%d_active", [n])] == true
	rotated := row[sprintf("access_key_%d_last_rotated", [n])]
	rotated != "N/A"
	input.now_ns - time.parse_rfc3339_ns(rotated) > input.params.max_age_days * day_ns
}
