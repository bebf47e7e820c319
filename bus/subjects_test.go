package bus_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/session-bus/session-bus/bus"
)

func TestParseSubject(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		giveSubj   string
		wantClass  bus.Class
		wantMethod bus.Method
		wantCaller string
		wantOK     bool
	}{
		{name: "request", giveSubj: "sessionbus.read.get.svc-a", wantClass: bus.ClassRead, wantMethod: bus.MethodGet, wantCaller: "svc-a", wantOK: true},
		{name: "unknown method and odd caller", giveSubj: "sessionbus.x.y.c$x", wantClass: "x", wantMethod: "y", wantCaller: "c$x", wantOK: true},
		{name: "other prefix", giveSubj: "other.read.get.svc-a"},
		{name: "no caller", giveSubj: "sessionbus.read.get"},
		{name: "dotted caller", giveSubj: "sessionbus.read.get.a.b"},
		{name: "prefix only", giveSubj: "sessionbus."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			class, method, caller, ok := bus.ParseSubject(tt.giveSubj)
			assert.Equal(t, tt.wantOK, ok)
			assert.Equal(t, tt.wantClass, class)
			assert.Equal(t, tt.wantMethod, method)
			assert.Equal(t, tt.wantCaller, caller)
		})
	}

	t.Run("round trip", func(t *testing.T) {
		subject, err := bus.MethodSubject(bus.MethodSetAttribute, "svc-b")
		assert.NoError(t, err)
		class, method, caller, ok := bus.ParseSubject(subject)
		assert.True(t, ok)
		assert.Equal(t, []any{bus.ClassWrite, bus.MethodSetAttribute, "svc-b"}, []any{class, method, caller})
	})
}
