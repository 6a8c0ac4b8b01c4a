package exhibit.controls.github_branch_protection

findings contains {"entity": sprintf("%s/%s", [p.org, repo.repository]), "reason": reason(repo)} if {
	some r in input.inputs.protection
	p := r.payload
	some repo in p.repositories
	not compliant(repo)
}

findings contains {"entity": sprintf("%s/%s", [p.org, name]), "reason": "the protection of the default branch could not be read"} if {
	some r in input.inputs.protection
	p := r.payload
	some name in p.unknown
}

compliant(repo) if {
	repo.protected == true
	repo.effective.pull_request_required == true
	repo.effective.required_approving_review_count >= input.params.min_approvals
}

reason(repo) := sprintf("default branch %s is not protected", [repo.default_branch]) if not repo.protected == true

reason(repo) := sprintf("default branch %s does not require a pull request", [repo.default_branch]) if {
	repo.protected == true
	not repo.effective.pull_request_required == true
}

reason(repo) := sprintf("default branch %s requires %v approvals, fewer than %v", [repo.default_branch, repo.effective.required_approving_review_count, input.params.min_approvals]) if {
	repo.protected == true
	repo.effective.pull_request_required == true
	not repo.effective.required_approving_review_count >= input.params.min_approvals
}
