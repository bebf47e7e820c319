package main

import (
	"encoding/json"
	"fmt"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/session-bus/session-bus/events"
)

// newEventsCmd is 'events': session events.
func newEventsCmd() *cobra.Command {
	return group(&cobra.Command{Use: "events", Short: "Watch session events"}, newEventsTailCmd())
}

// newEventsTailCmd is 'events tail': it prints session events as JSON
// lines until interrupted.
func newEventsTailCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tail",
		Short: "Print session events live, as JSON lines",
		Long:  "Print session events live, as JSON lines, until interrupted.\n\n" + loginHelp,
		Args:  usageArgs(cobra.NoArgs),
	}
	conn := newBusFlags(cmd.Flags(), false)
	var types, login, since, stream string
	f := envFlags{cmd.Flags()}
	f.str(&types, "type", "TAIL_TYPE", "", "comma-separated event types to show, e.g. created,deleted (default all)")
	f.str(&login, "login", "TAIL_LOGIN", "", "show only this login's events")
	f.str(&since, "since", "TAIL_SINCE", "", "also show stored events from this time on: a duration ago (10m) or RFC 3339")
	f.str(&stream, "events-stream", "EVENTS_STREAM", events.DefaultStreamConfig().Name, "events stream")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		opts := events.TailOptions{LoginID: login, Stream: stream}
		for _, t := range strings.Split(types, ",") {
			if t = strings.TrimSpace(t); t != "" {
				opts.Types = append(opts.Types, events.Type("session."+strings.TrimPrefix(t, "session.")))
			}
		}
		if since != "" {
			if d, err := time.ParseDuration(since); err == nil {
				opts.Since = time.Now().Add(-d)
			} else if t, err := time.Parse(time.RFC3339, since); err == nil {
				opts.Since = t
			} else {
				return invalid(cmd, "since", fmt.Errorf("%q is neither a duration nor an RFC 3339 time", since))
			}
		}
		nc, _, err := conn.connect()
		if err != nil {
			return err
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			return err
		}
		ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		enc := json.NewEncoder(cmd.OutOrStdout())
		if err := events.Tail(ctx, js, opts, func(ev events.Event) { _ = enc.Encode(ev) }); err != nil {
			return fmt.Errorf("tail: %w", err)
		}
		return nil
	}
	return cmd
}
