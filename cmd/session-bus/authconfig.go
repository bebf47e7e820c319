package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/session-bus/session-bus/auth"
)

// newAuthConfigCmd is 'auth-config': it prints the nats-server
// configuration stanza that makes an external server hand logins to the
// bus's auth callout, creating the keys in the data dir on first use.
// Every bus process must share that dir's auth/keys.json.
func newAuthConfigCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "auth-config",
		Short: "Print the nats-server config for an external server",
		Args:  usageArgs(cobra.NoArgs),
	}
	var dataDir, mode, resolverDir string
	f := envFlags{cmd.Flags()}
	f.str(&dataDir, "data-dir", "DATA_DIR", "session-bus-data", "data directory holding the bus's keys (auth/keys.json, auth/operator.json)")
	f.str(&mode, "auth", "AUTH", "accounts", "callout: the auth callout stanza (services not isolated); accounts: operator mode (operator JWT, system account, a full resolver preloaded with the bus's accounts)")
	f.str(&resolverDir, "resolver-dir", "RESOLVER_DIR", "jwt", "with --auth accounts: the directory where the server keeps account JWTs")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		switch mode {
		case "accounts":
			keys, err := auth.BootstrapOperator(dataDir)
			if err != nil {
				return err
			}
			text, err := auth.OperatorServerConfig(keys, resolverDir)
			if err != nil {
				return err
			}
			fmt.Fprint(cmd.OutOrStdout(), text)
			return nil
		case "callout":
		default:
			return usagef("--auth: want callout or accounts, not %q", mode)
		}
		keys, err := auth.Bootstrap(dataDir)
		if err != nil {
			return err
		}
		text, err := auth.ServerConfig(keys)
		if err != nil {
			return err
		}
		fmt.Fprint(cmd.OutOrStdout(), text)
		return nil
	}
	return cmd
}
