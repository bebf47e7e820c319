package main

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/spf13/pflag"

	"github.com/session-bus/session-bus/auth"
	"github.com/session-bus/session-bus/bus"
	"github.com/session-bus/session-bus/client"
)

// defaultAdminCreds is where 'serve' with the default --data-dir writes the
// admin's bus credentials.
var defaultAdminCreds = filepath.Join("session-bus-data", "auth", "admin.json")

// defaultAdminNATSCreds is the admin's NATS credentials file that 'serve'
// writes (accounts mode, the default); the service commands prefer it to
// defaultAdminCreds (callout mode) when it exists.
var defaultAdminNATSCreds = filepath.Join("session-bus-data", "auth", "admin.creds")

// loginHelp explains the login flags, for the help of the commands that
// have them.
const loginHelp = `Log in with one of --admin-creds or --service-creds (a bus credentials file),
--nats-creds or --nats-user (a NATS login); a login flag on the command line
replaces a login set in the environment.`

// loginFlags are the flags that each name a way to log in, in the order
// the help lists them.
var loginFlags = []string{"nats-creds", "nats-user", "service-creds", "admin-creds"}

// busFlags are the flags of every command that talks to a running bus:
// where it is, one login, and for the service commands the service they
// act as.
type busFlags struct {
	fs                                                 *pflag.FlagSet
	url, natsCreds, natsUser, serviceCreds, adminCreds string
	// tlsCA, tlsCert and tlsKey configure TLS to a bus whose server
	// requires it (serve --tls-cert).
	tlsCA, tlsCert, tlsKey string
	// serviceID is --service-id; asAdmin is set for the commands that have it.
	serviceID string
	asAdmin   bool
}

// newBusFlags defines the bus flags on fs. With asAdmin (the service
// commands) a command logs in with the admin credentials file when no
// login is given, and --service-id names the service it acts as.
func newBusFlags(fs *pflag.FlagSet, asAdmin bool) *busFlags {
	b := &busFlags{fs: fs, asAdmin: asAdmin}
	f := envFlags{fs}
	f.str(&b.url, "nats-url", "NATS_URL", nats.DefaultURL, "NATS URL of the bus")
	f.str(&b.tlsCA, "tls-ca", "TLS_CA", "", "PEM CA that signed the bus's server certificate (a tls:// URL)")
	f.str(&b.tlsCert, "tls-client-cert", "TLS_CLIENT_CERT", "", "PEM client certificate, for a bus that requires one (serve --tls-client-ca)")
	f.str(&b.tlsKey, "tls-client-key", "TLS_CLIENT_KEY", "", "PEM private key of --tls-client-cert")
	f.str(&b.natsCreds, "nats-creds", "NATS_CREDS", "", "log in with this NATS creds file")
	f.str(&b.natsUser, "nats-user", "NATS_USER", "", "log in as this NATS user (with the auth callout: a service id), password from $SESSION_BUS_NATS_PASSWORD only")
	f.str(&b.serviceCreds, "service-creds", "SERVICE_CREDS", "",
		"log in as the bus service in this credentials file, as 'service add --creds-out' writes it (a NATS .creds file; a JSON file with --auth callout)")
	adminHelp := "log in as admin with this credentials file, as 'serve' writes it: <data-dir>/auth/admin.creds (admin.json with --auth callout)"
	if asAdmin {
		adminHelp += "; with no login given: " + defaultAdminNATSCreds + ", else " + defaultAdminCreds
		f.str(&b.serviceID, "service-id", "CALLER_ID", "", "act as this service: the last token of request subjects and, with a NATS login, "+
			`the inbox prefix _INBOX_<id> (default: the bus credentials' service, else "`+auth.AdminServiceID+`")`)
	}
	f.str(&b.adminCreds, "admin-creds", "ADMIN_CREDS", "", adminHelp)
	return b
}

// login returns the one login flag given, or nil. A login on the command
// line replaces logins from the environment; two logins from the same
// place are a usage error.
func (b *busFlags) login() (*pflag.Flag, error) {
	var cmdline, environ []*pflag.Flag
	for _, name := range loginFlags {
		switch fl := b.fs.Lookup(name); {
		case fl.Value.String() == "":
		case fl.Changed:
			cmdline = append(cmdline, fl)
		default:
			environ = append(environ, fl)
		}
	}
	given := cmdline
	if len(given) == 0 {
		given = environ
	}
	switch len(given) {
	case 0:
		return nil, nil
	case 1:
		return given[0], nil
	}
	names := make([]string, len(given))
	for i, fl := range given {
		names[i] = origin(fl)
	}
	return nil, usagef("conflicting logins %s: give one", strings.Join(names, ", "))
}

// connect connects to the bus with the login given (see login); with none,
// the service commands log in with the admin credentials file and the
// others without a login. serviceID is the service the command acts as:
// --service-id, else the service of the bus credentials, else (for the
// service commands) the admin.
func (b *busFlags) connect() (nc *nats.Conn, serviceID string, err error) {
	if b.serviceID != "" {
		if err := bus.ValidateServiceID(b.serviceID); err != nil {
			return nil, "", usageError{fmt.Errorf("%s: %w", origin(b.fs.Lookup("service-id")), err)}
		}
	}
	fl, err := b.login()
	if err != nil {
		return nil, "", err
	}
	opts := []nats.Option{
		nats.Name("session-bus-cli"),
		// The command reports what failed; nats.go's default handler would
		// print a refused publish a second time.
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}),
	}
	if b.tlsCA != "" {
		opts = append(opts, nats.RootCAs(b.tlsCA))
	}
	if (b.tlsCert == "") != (b.tlsKey == "") {
		return nil, "", usagef("--tls-client-cert and --tls-client-key go together")
	}
	if b.tlsCert != "" {
		opts = append(opts, nats.ClientCert(b.tlsCert, b.tlsKey))
	}
	var natsLogin nats.Option
	var credsFile string
	switch {
	case fl == nil && b.asAdmin:
		credsFile = defaultAdminCreds
		if _, err := os.Stat(defaultAdminNATSCreds); err == nil {
			credsFile = defaultAdminNATSCreds
		}
	case fl == nil:
	case fl.Name == "nats-creds":
		natsLogin = nats.UserCredentials(b.natsCreds)
	case fl.Name == "nats-user":
		natsLogin = nats.UserInfo(b.natsUser, env("NATS_PASSWORD"))
	case fl.Name == "service-creds":
		credsFile = b.serviceCreds
	case fl.Name == "admin-creds":
		credsFile = b.adminCreds
	}
	serviceID = b.serviceID
	if credsFile != "" {
		// A NATS credentials file (accounts mode) logs in as its user, the
		// service; a bus credentials file (callout mode) with the inbox
		// prefix of its service.
		credsOpts, id, err := client.CredsFileOptions(credsFile)
		if err != nil {
			return nil, "", err
		}
		opts = append(opts, credsOpts...)
		serviceID = cmp.Or(serviceID, id)
	}
	if b.asAdmin {
		serviceID = cmp.Or(serviceID, auth.AdminServiceID)
	}
	if natsLogin != nil {
		opts = append(opts, natsLogin)
		if serviceID != "" {
			// Replies go to the acting service's inbox, where the auth
			// callout's permissions (and the bus's documented ones) allow them.
			opts = append(opts, nats.CustomInboxPrefix(client.InboxPrefix(serviceID)))
		}
	}
	if nc, err = nats.Connect(b.url, opts...); err != nil {
		return nil, "", fmt.Errorf("connect to %s: %w", b.url, err)
	}
	return nc, serviceID, nil
}
