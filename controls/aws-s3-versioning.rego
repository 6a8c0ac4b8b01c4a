package exhibit.controls.aws_s3_versioning

in_scope(name) if {
	some pattern in input.params.bucket_patterns
	regex.match(pattern, name)
}

findings contains {"entity": b.name, "reason": sprintf("versioning is %v", [object.get(b.versioning, "status", null)])} if {
	some r in input.inputs.buckets
	some b in r.payload.buckets
	in_scope(b.name)
	not b.versioning.enabled == true
}
