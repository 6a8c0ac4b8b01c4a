package exhibit.controls.aws_s3_encryption

findings contains {"entity": b.name, "reason": "no default encryption"} if {
	some r in input.inputs.buckets
	some b in r.payload.buckets
	not b.encrypted == true
}
