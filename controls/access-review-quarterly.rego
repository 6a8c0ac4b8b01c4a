package exhibit.controls.access_review_quarterly

# The review itself is required by the control file's [attestation]; the
# policy only refuses a snapshot that lists no users, which no one can have
# reviewed.
findings contains {"entity": r.record.stream, "reason": "the users snapshot is empty"} if {
	some r in input.inputs.users
	count(r.payload.users.items) == 0
}
