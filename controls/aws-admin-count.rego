package exhibit.controls.aws_admin_count

findings contains {"entity": p.account_id, "reason": sprintf("%d IAM users have administrator access, more than %d: %s", [count(admins), input.params.max_admins, concat(", ", sort(admins))])} if {
	some r in input.inputs.users
	p := r.payload
	admins := [u.user_name | some u in p.users; u.is_admin == true]
	count(admins) > input.params.max_admins
}
