package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/session-bus/session-bus/auth"
	"github.com/session-bus/session-bus/bus"
	"github.com/session-bus/session-bus/client"
)

const serviceUsage = `usage:
  session-bus service add <id> [--name N] [--permissions p1,p2] [--creds-out FILE]
  session-bus service list
  session-bus service rotate <id> [--grace 1h] [--creds-out FILE]
  session-bus service remove <id>

Permissions: session.read, session.write, session.admin, events.subscribe,
service.verify, service.admin. The commands log in as the admin service
with --admin-creds (written by the first 'serve' into its data dir).
A new secret is printed once, or written to --creds-out (mode 0600).
`

// serviceCmd manages registered services through the bus, as admin.
func serviceCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, serviceUsage)
		return 2
	}
	verb, args := args[0], args[1:]
	f := newFlags("service "+verb, stderr)
	var conn natsFlags
	conn.bind(f)
	var adminCreds, name, perms, credsOut string
	var grace time.Duration
	f.str(&adminCreds, "admin-creds", "ADMIN_CREDS", filepath.Join("session-bus-data", "auth", "admin.json"), "admin credentials file")
	f.str(&name, "name", "SERVICE_NAME", "", "service name (add)")
	f.str(&perms, "permissions", "SERVICE_PERMISSIONS", "", "comma-separated permissions (add)")
	f.str(&credsOut, "creds-out", "CREDS_OUT", "", "write the service's credentials to this file (mode 0600) instead of printing the secret")
	f.dur(&grace, "grace", "ROTATE_GRACE", time.Hour, "how long the old secret keeps working (rotate)")
	id, rest := splitPositional(args)
	if code, ok := f.parse(rest, stderr); !ok {
		return code
	}
	if verb != "list" && id == "" {
		fmt.Fprint(stderr, serviceUsage)
		return 2
	}
	creds, err := auth.LoadServiceCreds(adminCreds)
	if err != nil {
		fmt.Fprintln(stderr, "session-bus:", err)
		return 1
	}
	nc, err := nats.Connect(conn.url, append(creds.NATSOptions(), nats.Name("session-bus-cli"))...)
	if err != nil {
		fmt.Fprintln(stderr, "session-bus: connect:", err)
		return 1
	}
	defer nc.Close()
	c, err := client.New(nc, client.WithServiceID(creds.ServiceID))
	if err != nil {
		fmt.Fprintln(stderr, "session-bus:", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var secret string
	switch verb {
	case "add":
		var list []string
		for _, p := range strings.Split(perms, ",") {
			if p = strings.TrimSpace(p); p != "" {
				list = append(list, p)
			}
		}
		secret, err = c.RegisterService(ctx, bus.ServiceCredential{ServiceID: id, ServiceName: name, Permissions: list}, "")
	case "rotate":
		secret, err = c.RotateService(ctx, id, "", grace)
	case "remove":
		err = c.RemoveService(ctx, id)
	case "list":
		var list []bus.ServiceCredential
		if list, err = c.ListServices(ctx); err == nil {
			enc := json.NewEncoder(stdout)
			for _, s := range list {
				_ = enc.Encode(s)
			}
		}
	default:
		fmt.Fprint(stderr, serviceUsage)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "session-bus: service %s: %v\n", verb, err)
		return 1
	}
	if secret == "" {
		return 0
	}
	out := auth.ServiceCreds{ServiceID: id, Secret: secret}
	data, _ := json.Marshal(map[string]string{"service_id": out.ServiceID, "secret": out.Secret})
	if credsOut == "" {
		fmt.Fprintln(stdout, string(data)) // shown once; the bus keeps only a hash
		return 0
	}
	if err := os.WriteFile(credsOut, append(data, '\n'), 0o600); err != nil {
		fmt.Fprintln(stderr, "session-bus: write creds:", err)
		return 1
	}
	fmt.Fprintf(stdout, "credentials of %s written to %s\n", id, credsOut)
	return 0
}

// splitPositional takes the first argument that is not a flag (or a
// flag's value) as the service id, so flags may come before or after it.
func splitPositional(args []string) (string, []string) {
	valueFlags := map[string]bool{"-nats-url": true, "-nats-creds": true, "-nats-user": true, "-admin-creds": true,
		"-name": true, "-permissions": true, "-creds-out": true, "-grace": true}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			return a, append(append([]string{}, args[:i]...), args[i+1:]...)
		}
		if name := "-" + strings.TrimLeft(a, "-"); valueFlags[name] && !strings.Contains(a, "=") {
			i++ // skip the flag's value
		}
	}
	return "", args
}

// authConfig prints the nats-server configuration stanza that makes an
// external server hand logins to the bus's auth callout, creating the keys
// in the data dir on first use. Every bus process must share that dir's
// auth/keys.json.
func authConfig(args []string, stdout, stderr io.Writer) int {
	f := newFlags("auth-config", stderr)
	var dataDir string
	f.str(&dataDir, "data-dir", "DATA_DIR", "session-bus-data", "data directory holding auth/keys.json")
	if code, ok := f.parse(args, stderr); !ok {
		return code
	}
	keys, err := auth.Bootstrap(dataDir)
	if err != nil {
		fmt.Fprintln(stderr, "session-bus:", err)
		return 1
	}
	text, err := auth.ServerConfig(keys)
	if err != nil {
		fmt.Fprintln(stderr, "session-bus:", err)
		return 1
	}
	fmt.Fprint(stdout, text)
	return 0
}
