package natsapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/session-bus/session-bus/bus"
)

const sid = "6f1c3f5e-8a53-4b1e-9a51-2d0c8f0e7a11"

// update builds an update body around the given attributes object and
// extra top-level members.
func update(attrs, extra string) string {
	return `{"session_id":"` + sid + `","attributes":` + attrs + `,"revision":1` + extra + `}`
}

func TestDecodeRequest_DuplicateKeys(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		giveBody  string
		wantAttrs map[string]string
		wantErr   bool
	}{
		{name: "distinct", giveBody: update(`{"role":"a","lang":"fr"}`, ""), wantAttrs: map[string]string{"role": "a", "lang": "fr"}},
		{name: "same field twice", giveBody: update(`{}`, `,"revision":2`), wantErr: true},
		{name: "field in another case", giveBody: update(`{}`, `,"SESSION_ID":"`+sid+`"`), wantErr: true},
		{name: "field mixed case", giveBody: update(`{}`, `,"Revision":1`), wantErr: true},
		{name: "field spelled with an escape", giveBody: update(`{}`, `,"revisio\u006e":1`), wantErr: true},
		{name: "field with Kelvin sign", giveBody: `{"token":"a","to\u212aen":"b"}`, wantErr: true},
		{name: "attributes in another case", giveBody: update(`{}`, `,"Attributes":{}`), wantErr: true},
		{name: "attribute key twice", giveBody: update(`{"role":"a","role":"b"}`, ""), wantErr: true},
		{name: "attribute key spelled with an escape", giveBody: update(`{"role":"a","rol\u0065":"b"}`, ""), wantErr: true},
		{name: "attribute keys differ in case", giveBody: update(`{"Role":"a","role":"b","ROLE":"c"}`, ""),
			wantAttrs: map[string]string{"Role": "a", "role": "b", "ROLE": "c"}},
		{name: "upper-case attributes key holds a duplicate", giveBody: `{"session_id":"` + sid + `","ATTRIBUTES":{"k":"1","k":"2"},"revision":1}`, wantErr: true},
		{name: "keys as values", giveBody: update(`{"role":"role","x":"role"}`, `,"login_id":"revision"`),
			wantAttrs: map[string]string{"role": "role", "x": "role"}},
		{name: "quotes and braces in values", giveBody: update(`{"a":"}\",\"a\":{","b":"\\","c":"\\\""}`, ""),
			wantAttrs: map[string]string{"a": `}","a":{`, "b": `\`, "c": `\"`}},
		{name: "read-only fields once each", giveBody: update(`{}`, `,"token":"t","service_id":"s","create_time":"2026-01-02T15:04:05Z"`), wantAttrs: map[string]string{}},
		{name: "read-only field twice", giveBody: update(`{}`, `,"token":"t","TOKEN":"u"`), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r any = &bus.UpdateRequest{}
			required := []string{"session_id", "attributes", "revision"}
			if strings.HasPrefix(tt.giveBody, `{"token"`) {
				r, required = &bus.TokenRequest{}, []string{"token"}
			}
			err := decodeRequest([]byte(tt.giveBody), r, required...)
			if tt.wantErr {
				require.ErrorIs(t, err, bus.ErrInvalidInput)
				assert.Contains(t, err.Error(), "twice")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.wantAttrs, r.(*bus.UpdateRequest).Attributes)
		})
	}
}

// TestDecodeRequest_ManyNames checks the repeats past the first names,
// where the comparison moves from pairs to a map.
func TestDecodeRequest_ManyNames(t *testing.T) {
	t.Parallel()
	members := func(n int, extra string) string {
		var b strings.Builder
		b.WriteString("{")
		for i := range n {
			fmt.Fprintf(&b, `"k%d":"v",`, i)
		}
		b.WriteString(extra + "}")
		return b.String()
	}

	var m map[string]any
	require.NoError(t, decodeRequest([]byte(members(40, `"K40":"v"`)), &m))
	assert.Len(t, m, 41)
	for _, extra := range []string{`"K3":"v"`, `"k39":"v"`, `"\u004b\u0033\u0039":"v"`} {
		err := decodeRequest([]byte(members(40, extra)), &m)
		require.ErrorIs(t, err, bus.ErrInvalidInput, extra)
	}

	var r bus.UpdateRequest
	require.NoError(t, decodeRequest([]byte(update(members(40, `"K3":"v"`), "")), &r))
	assert.Len(t, r.Attributes, 41, "attribute keys that differ in case are distinct")
	err := decodeRequest([]byte(update(members(40, `"k3":"w"`), "")), &r)
	require.ErrorIs(t, err, bus.ErrInvalidInput)
}

func TestDecodeRequest_LoneSurrogates(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		giveAttrs string
		wantValue string
		wantErr   bool
	}{
		{name: "pair", giveAttrs: `{"k":"\ud83d\ude00"}`, wantValue: "\U0001F600"},
		{name: "pair upper-case hex", giveAttrs: `{"k":"\uD83D\uDE00!"}`, wantValue: "\U0001F600!"},
		{name: "replacement character itself", giveAttrs: `{"k":"\ufffd"}`, wantValue: "\uFFFD"},
		{name: "escaped backslash before u", giveAttrs: `{"k":"\\ud800"}`, wantValue: `\ud800`},
		{name: "BMP escape", giveAttrs: `{"k":"\u00e9\u20ac"}`, wantValue: "é€"},
		{name: "lone high", giveAttrs: `{"k":"\ud800"}`, wantErr: true},
		{name: "lone low", giveAttrs: `{"k":"\udc00"}`, wantErr: true},
		{name: "high then text", giveAttrs: `{"k":"\ud800x"}`, wantErr: true},
		{name: "high then other escape", giveAttrs: `{"k":"\ud800\n"}`, wantErr: true},
		{name: "high then BMP escape", giveAttrs: `{"k":"\ud800\u0041"}`, wantErr: true},
		{name: "high then high", giveAttrs: `{"k":"\ud800\ud800\udc00"}`, wantErr: true},
		{name: "low then high", giveAttrs: `{"k":"\udc00\ud800"}`, wantErr: true},
		{name: "high at end of string", giveAttrs: `{"k":"a\udbff"}`, wantErr: true},
		{name: "in an attribute key", giveAttrs: `{"k\udfff":"v"}`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r bus.UpdateRequest
			err := decodeRequest([]byte(update(tt.giveAttrs, "")), &r, "session_id", "attributes", "revision")
			if tt.wantErr {
				require.ErrorIs(t, err, bus.ErrInvalidInput)
				assert.Contains(t, err.Error(), "surrogate")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.wantValue, r.Attributes["k"])
		})
	}

	t.Run("in a top-level value", func(t *testing.T) {
		var r bus.CreateRequest
		err := decodeRequest([]byte(`{"login_id":"u\udc00","token":"t"}`), &r, "login_id", "token")
		require.ErrorIs(t, err, bus.ErrInvalidInput)
	})
	t.Run("in a permission", func(t *testing.T) {
		var r bus.RegisterServiceRequest
		err := decodeRequest([]byte(`{"service_id":"s","permissions":["session.read","\ud800"]}`), &r, "service_id")
		require.ErrorIs(t, err, bus.ErrInvalidInput)
	})
}

// FuzzDecodeRequest checks that the strict checks never panic and accept
// only bodies encoding/json reads as valid JSON.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{
		update(`{"a":"b"}`, ""), update(`{"a":"\ud83d\ude00"}`, ""), `{"token":"\\"}`, `{}`, `{"a":[{"b":"}"}]}`,
		update(`{"a":"b","a":"c"}`, ""), `{"token":"\ud800"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var r bus.UpdateRequest
		_ = decodeRequest(body, &r, "session_id")
		var m map[string]any
		if decodeRequest(body, &m) == nil && len(bytes.TrimSpace(body)) > 0 {
			assert.True(t, json.Valid(body), "accepted %q", body)
		}
	})
}

func BenchmarkDecodeRequest(b *testing.B) {
	body := []byte(`{"session_id":"6f1c3f5e-8a53-4b1e-9a51-2d0c8f0e7a11"}`)
	b.ReportAllocs()
	for b.Loop() {
		var r bus.SessionIDRequest
		if err := decodeRequest(body, &r, "session_id"); err != nil {
			b.Fatal(err)
		}
	}
}
