package exhibit.controls.aws_console_mfa

findings contains {"entity": row.arn, "reason": "console password enabled without an MFA device"} if {
	some r in input.inputs.report
	some row in r.payload.rows
	row.password_enabled == true
	not row.mfa_active == true
}
