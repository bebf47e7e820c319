package client

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/stretchr/testify/assert"

	"github.com/session-bus/session-bus/bus"
)

func TestReplyErr(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		giveStatus string
		giveCode   string
		giveMsg    string
		wantIs     error
		wantText   string
	}{
		{"sentence", "404", "not_found", "session not found", bus.ErrSessionNotFound, "bus: session not found"},
		{"sentence with detail", "400", "invalid_input", `invalid input: field "token" is required`,
			bus.ErrInvalidInput, `bus: invalid input: field "token" is required`},
		{"older bus", "400", "invalid_input", `bus: invalid input: field "token" is required`,
			bus.ErrInvalidInput, `bus: invalid input: field "token" is required`},
		{"internal", "500", "internal", "internal error", bus.ErrInternal, "bus: internal error"},
		{"a word that only starts alike", "409", "conflict", "conflicting writes", bus.ErrConflict, "bus: conflict: conflicting writes"},
		{"newer code", "409", "brand_new", "brand new trouble", bus.ErrConflict, "bus: conflict: brand new trouble"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, err := json.Marshal(bus.ErrorReply{Error: bus.ErrorBody{Code: tt.giveCode, Message: tt.giveMsg}})
			if err != nil {
				t.Fatal(err)
			}
			msg := &nats.Msg{Data: body, Header: nats.Header{micro.ErrorCodeHeader: []string{tt.giveStatus}, micro.ErrorHeader: []string{tt.giveMsg}}}
			got := replyErr(bus.MethodGet, tt.giveStatus, msg)
			assert.True(t, errors.Is(got, tt.wantIs), "%v is not %v", got, tt.wantIs)
			assert.Equal(t, tt.wantText, got.Error())
		})
	}
}
