package natsapi

import "sync"

// Callers maps the account key the NATS server puts in a request's
// subject (the importing account) to the registered service it belongs
// to; auth.Accounts is one. See [WithCallers].
type Callers interface {
	ServiceOf(account string) (serviceID string, ok bool)
}

// MappedReplyPrefix starts every reply subject the NATS server maps for a
// request that crossed from an importing account.
const MappedReplyPrefix = "_R_."

// callerSlots counts the requests in flight per caller. Its zero value is
// ready to use.
type callerSlots struct {
	mu sync.Mutex
	n  map[string]int
}

// acquire takes a slot for caller unless it already holds limit.
func (c *callerSlots) acquire(caller string, limit int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	if c.n[caller] >= limit {
		return false
	}
	c.n[caller]++
	return true
}

func (c *callerSlots) release(caller string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[caller] <= 1 {
		delete(c.n, caller) // the map holds only callers with requests in flight
		return
	}
	c.n[caller]--
}
