package kvstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Reads of a key's last message. On a single replica they are direct gets.
// On a replicated bucket they go to the stream leader: a direct get may be
// answered by a follower that has not applied the latest writes, and a
// compare-and-set built on such a read was seen to pass the leader's check
// and overwrite a newer, acknowledged write (nats-server v2.15.2, R3, 32
// writers on one session beside four busy loops: 1-9 of 1,600 updates lost
// in about one round in ten; none in 45 rounds reading from the leader).
// Reading from the leader also gives read-your-writes across bus processes.

// lastMsg returns the last message stored on key of the sessions bucket.
// A missing key is jetstream.ErrMsgNotFound.
func (st *Store) lastMsg(ctx context.Context, key string) (*jetstream.RawStreamMsg, error) {
	if !st.leaderReads {
		return st.stream.GetLastMsgForSubject(ctx, st.subjPre+key)
	}
	return leaderGet(ctx, st.js, st.stream.CachedInfo().Config.Name, st.subjPre+key)
}

// liveMsg is lastMsg for a key that must hold a value: a delete, purge or
// expiry marker is jetstream.ErrMsgNotFound too.
func (st *Store) liveMsg(ctx context.Context, key string) (*jetstream.RawStreamMsg, error) {
	msg, err := st.lastMsg(ctx, key)
	if err == nil && tombstone(msg.Header) {
		return nil, jetstream.ErrMsgNotFound
	}
	return msg, err
}

// lastService returns the last message on a service's key of the services
// bucket, as lastMsg does for sessions.
func (st *Store) lastService(ctx context.Context, serviceID string) (*jetstream.RawStreamMsg, error) {
	subject := "$KV." + st.servicesBucket + "." + serviceID
	if !st.leaderReads {
		e, err := st.services.Get(ctx, serviceID)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil, jetstream.ErrMsgNotFound
		}
		if err != nil {
			return nil, err
		}
		return &jetstream.RawStreamMsg{Subject: subject, Sequence: e.Revision(), Data: e.Value(), Time: e.Created()}, nil
	}
	msg, err := leaderGet(ctx, st.js, StreamName(st.servicesBucket), subject)
	if err == nil && tombstone(msg.Header) { // a removed service
		return nil, jetstream.ErrMsgNotFound
	}
	return msg, err
}

// msgGetResponse is the stream leader's answer to STREAM.MSG.GET.
type msgGetResponse struct {
	Error   *jetstream.APIError `json:"error,omitempty"`
	Message *struct {
		Subject  string    `json:"subject"`
		Sequence uint64    `json:"seq"`
		Header   []byte    `json:"hdrs,omitempty"`
		Data     []byte    `json:"data,omitempty"`
		Time     time.Time `json:"time"`
	} `json:"message,omitempty"`
}

// leaderGet asks the leader of stream for the last message on subject
// (the JetStream API that jetstream.Stream uses when direct gets are off).
func leaderGet(ctx context.Context, js jetstream.JetStream, stream, subject string) (*jetstream.RawStreamMsg, error) {
	req, err := json.Marshal(struct {
		LastFor string `json:"last_by_subj"`
	}{subject})
	if err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, js.Options().DefaultTimeout)
		defer cancel()
	}
	reply, err := js.Conn().RequestWithContext(ctx, apiPrefix(js.Options())+"STREAM.MSG.GET."+stream, req)
	if err != nil {
		return nil, fmt.Errorf("kvstore: read %q: %w", subject, err)
	}
	var resp msgGetResponse
	if err := json.Unmarshal(reply.Data, &resp); err != nil {
		return nil, fmt.Errorf("kvstore: read %q: %w", subject, err)
	}
	switch {
	case resp.Error != nil && resp.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound:
		return nil, jetstream.ErrMsgNotFound
	case resp.Error != nil:
		return nil, fmt.Errorf("kvstore: read %q: %w", subject, resp.Error)
	case resp.Message == nil:
		return nil, fmt.Errorf("kvstore: read %q: %w", subject, jetstream.ErrInvalidJetStreamResponse)
	}
	m := resp.Message
	var hdr nats.Header
	if len(m.Header) > 0 {
		if hdr, err = nats.DecodeHeadersMsg(m.Header); err != nil {
			return nil, fmt.Errorf("kvstore: read %q: %w", subject, err)
		}
	}
	return &jetstream.RawStreamMsg{Subject: m.Subject, Sequence: m.Sequence, Header: hdr, Data: m.Data, Time: m.Time}, nil
}

// apiPrefix is the JetStream API prefix js sends requests to, as jetstream
// computes it: an explicit prefix, a domain's, or the default.
func apiPrefix(o jetstream.JetStreamOptions) string {
	switch {
	case o.APIPrefix != "":
		return strings.TrimSuffix(o.APIPrefix, ".") + "."
	case o.Domain != "":
		return "$JS." + o.Domain + ".API."
	}
	return jetstream.DefaultAPIPrefix
}
