package exhibit.controls.github_pr_approved

pulls contains [sprintf("%s/%s#%v", [p.org, pr.repository, pr.number]), pr] if {
	some r in input.inputs.pulls
	p := r.payload
	some pr in p.pull_requests
}

occurrences contains {
	"id": id,
	"at": pr.merged_at,
	"repository": pr.repository,
	"number": pr.number,
	"author": pr.author,
	"merged_by": pr.merged_by,
	"approvers": sort([a.reviewer | some a in pr.approvals]),
	"checks_passed": checks_passed(pr),
} if {
	some pair in pulls
	id := pair[0]
	pr := pair[1]
}

checks_passed(pr) := false if {
	some c in pr.checks.required
	c.passed == false
}

checks_passed(pr) := true if {
	is_object(pr.checks.required)
	every c in pr.checks.required { c.passed == true }
}

checks_passed(pr) := null if not is_object(pr.checks.required)

findings contains {"entity": id, "reason": "merged without an approval by someone other than its author"} if {
	some pair in pulls
	id := pair[0]
	pr := pair[1]
	not pr.independent_approval == true
}

findings contains {"entity": id, "reason": sprintf("required check %s did not pass (%v)", [name, c.result])} if {
	some pair in pulls
	id := pair[0]
	pr := pair[1]
	some name, c in pr.checks.required
	c.passed == false
}

findings contains {"entity": id, "reason": "no required status checks on record"} if {
	input.params.require_checks == true
	some pair in pulls
	id := pair[0]
	pr := pair[1]
	checks_passed(pr) == null
}
