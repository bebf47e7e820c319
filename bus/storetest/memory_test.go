package storetest_test

import (
	"testing"

	"github.com/session-bus/session-bus/bus"
	"github.com/session-bus/session-bus/bus/storetest"
)

func TestMemoryStore(t *testing.T) {
	storetest.Run(t, func(testing.TB) bus.Store { return bus.NewMemoryStore() })
}
