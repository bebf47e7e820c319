package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/session-bus/session-bus/bus"
)

// System account request subjects (nats-server 2.10+).
const (
	connzPingSubject = "$SYS.REQ.SERVER.PING.CONNZ"
	kickSubjectFmt   = "$SYS.REQ.SERVER.%s.KICK"
)

// Revoke timing.
const (
	// DefaultRevokeTimeout bounds a Revoke whose ctx has no deadline.
	DefaultRevokeTimeout = 5 * time.Second
	// revokeQuiet is how long Revoke waits for more servers to answer
	// after the last answer came.
	revokeQuiet = 250 * time.Millisecond
	// maxConnsListed bounds the connections of one service found per server.
	maxConnsListed = 100_000
)

// Revoke closes every connection that service serviceID holds, on every
// server of the NATS system, and returns how many it closed. It asks all
// servers for the service's connections ($SYS.REQ.SERVER.PING.CONNZ),
// waits until they have stopped answering for 250 ms, then kicks each
// connection ($SYS.REQ.SERVER.<id>.KICK). A kicked client logs in again
// through the callout, which refuses it once the service is removed; so
// remove first, then revoke. A login whose check passed just before the
// removal can slip through; its JWT ends within [Config.TokenTTL].
// Errors: [ErrNoSystemConn], bus.ErrInvalidInput, [ErrRevoke] (wrapping
// what the servers said), or the NATS error.
func (c *Callout) Revoke(ctx context.Context, serviceID string) (int, error) {
	if c.o.sys == nil {
		return 0, ErrNoSystemConn
	}
	// Service ids never clash with the bus's own users ([BusUser], [SysUser]).
	if err := bus.ValidateServiceID(serviceID); err != nil {
		return 0, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultRevokeTimeout)
		defer cancel()
	}
	conns, err := c.findConns(ctx, serviceID)
	if err != nil {
		return 0, err
	}
	var errs []error
	n := 0
	for _, cn := range conns {
		if err := c.kick(ctx, cn.server, cn.cid); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	if n > 0 {
		c.log.Info("service connections closed", keyServiceID, serviceID, keyCount, n)
	}
	return n, errors.Join(errs...)
}

type connRef struct {
	server string
	cid    uint64
}

// findConns asks every server for the open connections of user id in the
// callout's account.
func (c *Callout) findConns(ctx context.Context, id string) ([]connRef, error) {
	req, _ := json.Marshal(server.ConnzEventOptions{ConnzOptions: server.ConnzOptions{
		User:    id,
		Account: c.cfg.Account,
		Limit:   maxConnsListed,
		State:   server.ConnOpen,
	}})
	inbox := c.o.sys.NewRespInbox()
	ch := make(chan *nats.Msg, 64)
	sub, err := c.o.sys.ChanSubscribe(inbox, ch)
	if err != nil {
		return nil, fmt.Errorf("auth: revoke: subscribe: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := c.o.sys.PublishRequest(connzPingSubject, inbox, req); err != nil {
		return nil, fmt.Errorf("auth: revoke: list connections: %w", err)
	}
	var refs []connRef
	var errs []error
	var quiet <-chan time.Time // nil until the first answer
	for {
		select {
		case msg := <-ch:
			var connz server.Connz
			resp := server.ServerAPIResponse{Data: &connz}
			if err := json.Unmarshal(msg.Data, &resp); err != nil {
				errs = append(errs, fmt.Errorf("%w: connz reply: %w", ErrRevoke, err))
			} else if resp.Error != nil {
				errs = append(errs, fmt.Errorf("%w: connz: %s", ErrRevoke, resp.Error.Description))
			} else if resp.Server != nil {
				for _, ci := range connz.Conns {
					refs = append(refs, connRef{server: resp.Server.ID, cid: ci.Cid})
				}
			}
			quiet = time.After(revokeQuiet)
		case <-quiet:
			return refs, errors.Join(errs...)
		case <-ctx.Done():
			if quiet != nil { // some servers answered: act on what they said
				return refs, errors.Join(errs...)
			}
			return nil, fmt.Errorf("%w: no server listed connections: %w", ErrRevoke, ctx.Err())
		}
	}
}

// kick closes connection cid on server serverID.
func (c *Callout) kick(ctx context.Context, serverID string, cid uint64) error {
	req, _ := json.Marshal(server.KickClientReq{CID: cid})
	msg, err := c.o.sys.RequestWithContext(ctx, fmt.Sprintf(kickSubjectFmt, serverID), req)
	if err != nil {
		return fmt.Errorf("%w: kick %d on %s: %w", ErrRevoke, cid, serverID, err)
	}
	var resp server.ServerAPIResponse
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return fmt.Errorf("%w: kick reply: %w", ErrRevoke, err)
	}
	if resp.Error != nil {
		// The connection may have closed in between: nothing left to do.
		c.log.Debug("kick refused", keyServer, serverID, "cid", cid, keyErr, resp.Error.Description)
		return nil
	}
	return nil
}

// WatchRemovals revokes the connections of every service whose record
// leaves kv, the services bucket (kvstore.Config.ServicesBucket, keyed by
// service id), whichever bus process removed it. ctx bounds the setup; the
// watch runs until [Callout.Close]. Errors: [ErrNoSystemConn], or the
// watch's.
func (c *Callout) WatchRemovals(ctx context.Context, kv jetstream.KeyValue) error {
	if c.o.sys == nil {
		return ErrNoSystemConn
	}
	if kv == nil {
		return fmt.Errorf("%w: nil bucket", ErrInvalidConfig)
	}
	watchCtx, cancel := context.WithCancel(c.ctx)
	stop := context.AfterFunc(ctx, cancel) // setup bounded by ctx
	w, err := kv.WatchAll(watchCtx, jetstream.UpdatesOnly())
	stop()
	if err != nil {
		cancel()
		return fmt.Errorf("auth: watch %s: %w", kv.Bucket(), err)
	}
	if !c.startWork() {
		_ = w.Stop()
		cancel()
		return fmt.Errorf("%w: callout is closed", ErrInvalidConfig)
	}
	go func() {
		defer c.wg.Done()
		defer cancel()
		defer func() { _ = w.Stop() }()
		for {
			select {
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e == nil || (e.Operation() != jetstream.KeyValueDelete && e.Operation() != jetstream.KeyValuePurge) {
					continue
				}
				rctx, rcancel := context.WithTimeout(c.ctx, DefaultRevokeTimeout)
				if _, err := c.Revoke(rctx, e.Key()); err != nil {
					c.log.Warn("revoke after removal failed", keyServiceID, e.Key(), keyErr, err)
				}
				rcancel()
			case <-c.ctx.Done():
				return
			}
		}
	}()
	return nil
}
