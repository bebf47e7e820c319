package auth

import (
	"slices"

	"github.com/nats-io/jwt/v2"

	"github.com/session-bus/session-bus/bus"
	"github.com/session-bus/session-bus/client"
)

// Permission names a service may hold in its bus.ServiceCredential: the
// bus's own names (bus.PermSessionRead, ...), which bus.RegisterService
// checks. [Permissions] turns them into NATS subject permissions.
const (
	// PermSessionRead allows the read class; see bus.PermSessionRead.
	PermSessionRead = bus.PermSessionRead
	// PermSessionWrite allows the write class; see bus.PermSessionWrite.
	PermSessionWrite = bus.PermSessionWrite
	// PermSessionAdmin allows the "sessions" class and $SRV.>; see
	// bus.PermSessionAdmin.
	PermSessionAdmin = bus.PermSessionAdmin
	// PermServiceVerify allows the verify method; see bus.PermServiceVerify.
	PermServiceVerify = bus.PermServiceVerify
	// PermServiceAdmin allows the admin class; see bus.PermServiceAdmin.
	PermServiceAdmin = bus.PermServiceAdmin
	// PermEventsSubscribe allows the change events; see
	// bus.PermEventsSubscribe.
	PermEventsSubscribe = bus.PermEventsSubscribe
)

// AllPermissions lists every permission [Permissions] knows, in table
// order: bus.AllPermissions itself.
var AllPermissions = bus.AllPermissions

// ClassSessions is the operation class [PermSessionAdmin] grants:
// "sessionbus.sessions.<method>.<caller>", reserved for bus-wide listings.
const ClassSessions bus.Class = "sessions"

// DefaultEventsStream is the events stream [Permissions] grants consumers
// on: events.DefaultStreamConfig().Name.
const DefaultEventsStream = "SESSION_EVENTS"

// Permissions returns the NATS permissions of service serviceID holding
// perms, on the default events stream: the login JWT's in callout mode,
// and the base of a service user's in accounts mode (see
// [Accounts.Provision]). It is the one table from bus permissions to
// subjects:
//
//	every service       subscribe _INBOX_<id>.>            (its replies)
//	session.read        publish   sessionbus.read.*.<id>
//	                    subscribe sessionbus.cache           (change notices)
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
// Repeated permissions are granted once. Unknown ones (which
// bus.RegisterService refuses, but a record stored before it did may
// hold) grant nothing.
func Permissions(serviceID string, perms []string) jwt.Permissions {
	return permissions(serviceID, perms, DefaultEventsStream)
}

func permissions(id string, perms []string, stream string) jwt.Permissions {
	var p jwt.Permissions
	p.Sub.Allow.Add(client.InboxPrefix(id) + ".>")
	for _, perm := range AllPermissions { // table order, each once
		if !slices.Contains(perms, perm) {
			continue
		}
		switch perm {
		case PermSessionRead:
			p.Pub.Allow.Add(bus.SubjectPrefix + "." + string(bus.ClassRead) + ".*." + id)
			p.Sub.Allow.Add(bus.CacheSubject) // the change notices a client cache follows
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
