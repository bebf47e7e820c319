package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/session-bus/session-bus/auth"
	"github.com/session-bus/session-bus/events"
)

// natsFlags are the connection flags of the commands that talk to a
// running bus.
type natsFlags struct {
	url, creds, user, serviceCreds string
}

func (n *natsFlags) bind(f *flags) {
	f.str(&n.url, "nats-url", "NATS_URL", nats.DefaultURL, "NATS URL of the bus")
	f.str(&n.creds, "nats-creds", "NATS_CREDS", "", "NATS creds file")
	f.str(&n.user, "nats-user", "NATS_USER", "", "user (password from $SESSION_BUS_NATS_PASSWORD only)")
}

// bindService adds --service-creds: a bus service's credentials file (as
// 'service add --creds-out' or the admin file write it).
func (n *natsFlags) bindService(f *flags) {
	f.str(&n.serviceCreds, "service-creds", "SERVICE_CREDS", "", "log in as the service in this credentials file")
}

func (n *natsFlags) connect() (*nats.Conn, error) {
	opts := []nats.Option{nats.Name("session-bus-cli")}
	switch {
	case n.serviceCreds != "":
		c, err := auth.LoadServiceCreds(n.serviceCreds)
		if err != nil {
			return nil, err
		}
		opts = append(opts, c.NATSOptions()...)
	case n.creds != "":
		opts = append(opts, nats.UserCredentials(n.creds))
	case n.user != "":
		opts = append(opts, nats.UserInfo(n.user, env("NATS_PASSWORD", "")))
	}
	return nats.Connect(n.url, opts...)
}

// eventsTail prints session events as JSON lines until interrupted.
func eventsTail(args []string, stdout, stderr io.Writer) int {
	f := newFlags("events tail", stderr)
	var conn natsFlags
	conn.bind(f)
	conn.bindService(f)
	var types, login, since, stream string
	f.str(&types, "type", "TAIL_TYPE", "", "comma-separated event types to show, e.g. created,deleted (default all)")
	f.str(&login, "login", "TAIL_LOGIN", "", "show only this login's events")
	f.str(&since, "since", "TAIL_SINCE", "", "also show stored events from this time on: a duration ago (10m) or RFC 3339")
	f.str(&stream, "events-stream", "EVENTS_STREAM", events.DefaultStreamConfig().Name, "events stream")
	if code, ok := f.parse(args, stderr); !ok {
		return code
	}
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
			fmt.Fprintf(stderr, "session-bus: --since %q: want a duration or RFC 3339 time\n", since)
			return 2
		}
	}
	nc, err := conn.connect()
	if err != nil {
		fmt.Fprintln(stderr, "session-bus: connect:", err)
		return 1
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		fmt.Fprintln(stderr, "session-bus:", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	enc := json.NewEncoder(stdout)
	err = events.Tail(ctx, js, opts, func(ev events.Event) { _ = enc.Encode(ev) })
	if err != nil {
		fmt.Fprintln(stderr, "session-bus: tail:", err)
		return 1
	}
	return 0
}
