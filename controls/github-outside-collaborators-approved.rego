package exhibit.controls.github_outside_collaborators_approved

findings contains {"entity": sprintf("%s:%s", [p.org, c.login]), "reason": "outside collaborator not on the approved list"} if {
	some r in input.inputs.collaborators
	p := r.payload
	some c in p.outside_collaborators
	not c.login in input.params.approved
}

findings contains {"entity": sprintf("%s:%s", [p.org, c.login]), "reason": "outside collaborator without two-factor authentication"} if {
	some r in input.inputs.collaborators
	p := r.payload
	some c in p.outside_collaborators
	not c.two_factor_disabled == false
}
