package exhibit.controls.aws_root_access_keys

findings contains {"entity": sprintf("arn:%s:iam::%s:root", [p.partition, p.account_id]), "reason": "the root user has access keys"} if {
	some r in input.inputs.summary
	p := r.payload
	not p.root_access_keys_present == false
}
