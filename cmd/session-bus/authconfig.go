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
	var dataDir string
	envFlags{cmd.Flags()}.str(&dataDir, "data-dir", "DATA_DIR", "session-bus-data", "data directory holding auth/keys.json")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
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
