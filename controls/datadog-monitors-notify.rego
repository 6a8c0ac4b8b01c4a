package exhibit.controls.datadog_monitors_notify

notifies(m) if regex.match(`(^|\s)@[A-Za-z0-9_.+-]+`, m.message)

findings contains {"entity": sprintf("monitor %v", [m.id]), "reason": sprintf("\"%s\" notifies no one", [m.name])} if {
	some r in input.inputs.monitors
	some m in r.payload.monitors.items
	not notifies(m)
}
