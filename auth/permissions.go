package auth

import (
	"slices"

	"github.com/nats-io/jwt/v2"

	"github.com/session-bus/session-bus/bus"
)

// Permission names a service may hold in its bus.ServiceCredential.
// [Permissions] turns them into NATS subject permissions; any other string
// grants nothing (it is kept in the credential and returned by verify).
const (
	// PermSessionRead allows the read class: get, get_by_token,
	// get_attribute, list_by_login.
	PermSessionRead = "session.read"
	// PermSessionWrite allows the write class: create, update, refresh,
	// delete, delete_by_token, set_attribute, remove_attribute, delete_all.
	PermSessionWrite = "session.write"
	// PermSessionAdmin allows the "sessions" class, reserved for bus-wide
	// listings, and the micro discovery subjects ($SRV.>) behind
	// `nats micro ls|info|stats session-bus`.
	PermSessionAdmin = "session.admin"
	// PermServiceVerify allows the verify method of the service class.
	PermServiceVerify = "service.verify"
	// PermServiceAdmin allows the admin class: register_service,
	// remove_service, list_services.
	PermServiceAdmin = "service.admin"
	// PermEventsSubscribe allows subscribing to change events (session.>)
	// and consuming the events stream through JetStream. It grants nothing
	// on the sessions KV bucket.
	PermEventsSubscribe = "events.subscribe"
)

// AllPermissions lists every permission [Permissions] knows, in table order.
var AllPermissions = []string{
	PermSessionRead, PermSessionWrite, PermSessionAdmin,
	PermServiceVerify, PermServiceAdmin, PermEventsSubscribe,
}

// ClassSessions is the operation class [PermSessionAdmin] grants:
// "sessionbus.sessions.<method>.<caller>", reserved for bus-wide listings.
const ClassSessions bus.Class = "sessions"

// DefaultEventsStream is the events stream [Permissions] grants consumers
// on: events.DefaultStreamConfig().Name.
const DefaultEventsStream = "SESSION_EVENTS"

// inboxPrefixBase starts every service's reply inbox prefix.
const inboxPrefixBase = "_INBOX_"

// InboxPrefix returns the reply-subject prefix a service must use,
// "_INBOX_<serviceID>": the only inboxes it may subscribe to, so that no
// service can read the replies sent to another (a create reply carries the
// user's token). Connect with nats.CustomInboxPrefix(InboxPrefix(id)), or
// use [ConnectOptions].
func InboxPrefix(serviceID string) string { return inboxPrefixBase + serviceID }

// Permissions returns the NATS permissions of service serviceID holding
// perms, on the default events stream. It is the one table from bus
// permissions to subjects:
//
//	every service       subscribe _INBOX_<id>.>            (its replies)
//	session.read        publish   sessionbus.read.*.<id>
//	session.write       publish   sessionbus.write.*.<id>
//	session.admin       publish   sessionbus.sessions.*.<id>  $SRV.>
//	service.verify      publish   sessionbus.service.verify.<id>
//	service.admin       publish   sessionbus.admin.*.<id>
//	events.subscribe    subscribe session.>
//	                    publish   $JS.API.STREAM.INFO.SESSION_EVENTS
//	                              $JS.API.CONSUMER.{CREATE,DURABLE.CREATE,INFO,DELETE,MSG.NEXT}.SESSION_EVENTS.>
//	                              $JS.API.CONSUMER.CREATE.SESSION_EVENTS
//	                              $JS.ACK.SESSION_EVENTS.>  $JS.FC.SESSION_EVENTS.>
//
// A service with no publish grant gets publish deny ">" (NATS reads an
// empty allow list as "allow all"). Publishing is allowed only to subjects
// that end in the service's own id,
// so a service can act only as itself. Nothing grants the sessions KV
// bucket ($KV.sessions.>, $JS.API.*.KV_sessions...) or any other subject.
// Unknown and repeated permissions are ignored.
func Permissions(serviceID string, perms []string) jwt.Permissions {
	return permissions(serviceID, perms, DefaultEventsStream)
}

func permissions(id string, perms []string, stream string) jwt.Permissions {
	var p jwt.Permissions
	p.Sub.Allow.Add(InboxPrefix(id) + ".>")
	for _, perm := range AllPermissions { // table order, each once
		if !slices.Contains(perms, perm) {
			continue
		}
		switch perm {
		case PermSessionRead:
			p.Pub.Allow.Add(bus.SubjectPrefix + "." + string(bus.ClassRead) + ".*." + id)
		case PermSessionWrite:
			p.Pub.Allow.Add(bus.SubjectPrefix + "." + string(bus.ClassWrite) + ".*." + id)
		case PermSessionAdmin:
			p.Pub.Allow.Add(bus.SubjectPrefix+"."+string(ClassSessions)+".*."+id, "$SRV.>")
		case PermServiceVerify:
			p.Pub.Allow.Add(bus.Subject(bus.ClassService, bus.MethodVerify, id))
		case PermServiceAdmin:
			p.Pub.Allow.Add(bus.SubjectPrefix + "." + string(bus.ClassAdmin) + ".*." + id)
		case PermEventsSubscribe:
			p.Sub.Allow.Add("session.>")
			p.Pub.Allow.Add(
				"$JS.API.STREAM.INFO."+stream,
				"$JS.API.CONSUMER.CREATE."+stream,
				"$JS.API.CONSUMER.CREATE."+stream+".>",
				"$JS.API.CONSUMER.DURABLE.CREATE."+stream+".>",
				"$JS.API.CONSUMER.INFO."+stream+".>",
				"$JS.API.CONSUMER.DELETE."+stream+".>",
				"$JS.API.CONSUMER.MSG.NEXT."+stream+".>",
				"$JS.ACK."+stream+".>",
				"$JS.FC."+stream+".>",
			)
		}
	}
	// An empty allow list means "anything" to NATS: deny all instead.
	if len(p.Pub.Allow) == 0 {
		p.Pub.Deny.Add(">")
	}
	return p
}
