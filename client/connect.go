package client

import "github.com/nats-io/nats.go"

// inboxPrefixBase starts every service's reply inbox prefix.
const inboxPrefixBase = "_INBOX_"

// InboxPrefix returns the reply-subject prefix a service must use,
// "_INBOX_<serviceID>": under the bus's server-enforced permissions the
// only inboxes it may subscribe to, so that no service can read the
// replies sent to another (a create reply carries the user's token).
// Connect with nats.CustomInboxPrefix(InboxPrefix(id)); most callers want
// [ConnectOptions] instead.
func InboxPrefix(serviceID string) string { return inboxPrefixBase + serviceID }

// ConnectOptions returns the nats.Options a service connects with when the
// bus checks logins itself (the auth callout): its id and secret as user
// and password, and its own inbox prefix ([InboxPrefix]), the only one it
// may receive replies on. Pass the same id to [WithServiceID]. A service
// with a credentials file wants [CredsFileOptions] instead.
func ConnectOptions(serviceID, secret string) []nats.Option {
	return []nats.Option{
		nats.UserInfo(serviceID, secret),
		nats.CustomInboxPrefix(InboxPrefix(serviceID)),
	}
}
