package exhibit.controls.aws_s3_public_access_blocked

blocked(pab) if {
	pab.block_public_acls == true
	pab.ignore_public_acls == true
	pab.block_public_policy == true
	pab.restrict_public_buckets == true
}

public(b) if b.policy_status.is_public == true

public(b) if b.acl.grants_to_everyone == true

reason(b) := "public access is not blocked, and the bucket policy or ACL makes it public" if public(b)

reason(b) := "public access is not blocked (neither on the bucket nor on the account)" if not public(b)

findings contains {"entity": b.name, "reason": reason(b)} if {
	some r in input.inputs.buckets
	p := r.payload
	some b in p.buckets
	not blocked(b.public_access_block)
	not blocked(p.account_public_access_block)
}
