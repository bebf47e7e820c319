package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/session-bus/session-bus/bus"
	"github.com/session-bus/session-bus/client"
)

// serviceTimeout bounds each 'service' command's call to the bus.
const serviceTimeout = 30 * time.Second

// newServiceCmd is 'service': manage registered services through the bus.
func newServiceCmd() *cobra.Command {
	return group(&cobra.Command{
		Use:   "service",
		Short: "Manage the services registered on the bus",
		Long: `Manage the services registered on the bus.

Permissions: session.read, session.write, session.admin, events.subscribe,
service.verify, service.admin. A new secret is printed once, or written to
--creds-out (mode 0600): a NATS credentials file (.creds: a user JWT and
its seed) for the service's own account, usable as 'nats --creds FILE' and
from any NATS client (with 'serve --auth callout': a JSON id and secret).

` + loginHelp + `
Without one, they log in as admin with the credentials file 'serve' writes
into its data dir: ` + defaultAdminNATSCreds + ` (` + defaultAdminCreds + ` with --auth callout).`,
	}, newServiceAddCmd(), newServiceListCmd(), newServiceRotateCmd(), newServiceRemoveCmd())
}

func newServiceAddCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "add <service-id>",
		Short: "Register a service and print (or write) its secret",
		Args:  usageArgs(cobra.ExactArgs(1)),
	}
	var name, perms, credsOut string
	f := envFlags{cmd.Flags()}
	f.str(&name, "name", "SERVICE_NAME", "", "service name")
	f.str(&perms, "permissions", "SERVICE_PERMISSIONS", "", "comma-separated permissions")
	f.str(&credsOut, "creds-out", "CREDS_OUT", "", "write the service's credentials to this file (mode 0600) instead of printing the secret")
	return serviceVerb(cmd, func(ctx context.Context, c *client.Client, out io.Writer, id string) error {
		var list []string
		for _, p := range strings.Split(perms, ",") {
			if p = strings.TrimSpace(p); p != "" {
				list = append(list, p)
			}
		}
		secret, err := c.RegisterService(ctx, bus.ServiceCredential{ServiceID: id, ServiceName: name, Permissions: list}, "")
		if err != nil {
			return err
		}
		return printCreds(out, client.ServiceCreds{ServiceID: id, Secret: secret}, credsOut)
	})
}

func newServiceListCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the registered services",
		Args:  usageArgs(cobra.NoArgs),
	}
	var asJSON bool
	envFlags{cmd.Flags()}.boolean(&asJSON, "json", "LIST_JSON", false, `print one JSON document {"services":[...]} instead of a table`)
	return serviceVerb(cmd, func(ctx context.Context, c *client.Client, out io.Writer, _ string) error {
		list, err := c.ListServices(ctx)
		if err != nil {
			return err
		}
		if !asJSON {
			return printServices(out, list)
		}
		if list == nil {
			list = []bus.ServiceCredential{} // "services":[], not null
		}
		return json.NewEncoder(out).Encode(bus.ServicesReply{Services: list})
	})
}

func newServiceRotateCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rotate <service-id>",
		Short: "Give a service a new secret and print (or write) it",
		Args:  usageArgs(cobra.ExactArgs(1)),
	}
	var credsOut string
	var grace time.Duration
	f := envFlags{cmd.Flags()}
	f.dur(&grace, "grace", "ROTATE_GRACE", time.Hour, "how long the old secret keeps working")
	f.str(&credsOut, "creds-out", "CREDS_OUT", "", "write the service's credentials to this file (mode 0600) instead of printing the secret")
	return serviceVerb(cmd, func(ctx context.Context, c *client.Client, out io.Writer, id string) error {
		secret, err := c.RotateService(ctx, id, "", grace)
		if err != nil {
			return err
		}
		return printCreds(out, client.ServiceCreds{ServiceID: id, Secret: secret}, credsOut)
	})
}

func newServiceRemoveCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "remove <service-id>",
		Short: "Unregister a service; its connections close within a second",
		Args:  usageArgs(cobra.ExactArgs(1)),
	}
	return serviceVerb(cmd, func(ctx context.Context, c *client.Client, _ io.Writer, id string) error {
		return c.RemoveService(ctx, id)
	})
}

// serviceVerb adds the bus flags to a 'service' subcommand, and makes it
// call run with a client acting as the service they name. id is the
// command's argument, "" for none.
func serviceVerb(cmd *cobra.Command, run func(ctx context.Context, c *client.Client, out io.Writer, id string) error) *cobra.Command {
	conn := newBusFlags(cmd.Flags(), true)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		nc, serviceID, err := conn.connect()
		if err != nil {
			return err
		}
		defer nc.Close()
		c, err := client.New(nc, client.WithServiceID(serviceID))
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), serviceTimeout)
		defer cancel()
		var id string
		if len(args) > 0 {
			id = args[0]
		}
		if err := run(ctx, c, cmd.OutOrStdout(), id); err != nil {
			return fmt.Errorf("service %s: %w", cmd.Name(), err)
		}
		return nil
	}
	return cmd
}

// printCreds prints a new secret as credentials JSON, shown once (the bus
// keeps only a hash), or writes it to file (mode 0600) when file is set.
func printCreds(out io.Writer, creds client.ServiceCreds, file string) error {
	data, err := json.Marshal(creds)
	if err != nil {
		return err
	}
	if client.IsNATSCreds([]byte(creds.Secret)) {
		// --auth accounts: the bus answered with a NATS credentials
		// file, usable as is (nats --creds, nats.js, any client).
		data = []byte(strings.TrimRight(creds.Secret, "\n"))
	}
	if file == "" {
		_, err := fmt.Fprintln(out, string(data))
		return err
	}
	if err := os.WriteFile(file, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("write creds: %w", err)
	}
	fmt.Fprintf(out, "credentials of %s written to %s\n", creds.ServiceID, file)
	return nil
}

// printServices prints services as a table.
func printServices(out io.Writer, list []bus.ServiceCredential) error {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE ID\tNAME\tPERMISSIONS\tCREATED")
	for _, s := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.ServiceID, cmp.Or(s.ServiceName, "-"),
			cmp.Or(strings.Join(s.Permissions, ","), "-"), s.CreatedAt.Format(time.RFC3339))
	}
	return tw.Flush()
}
