package loadgen

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/session-bus/session-bus/bus"
	"github.com/session-bus/session-bus/client"
)

// Class says which raw KV operation a bus operation is compared with in
// the baseline.
type Class int

const (
	// Read operations are compared with kv.Get.
	Read Class = iota + 1
	// Write operations are compared with kv.Put.
	Write
)

// need is what an operation needs prepared before it is measured; 0 is
// nothing.
type need int

const (
	needPool    need = iota + 1 // the shared pool: sessions, their tokens, logins with LoginSessions each
	needVictims                 // one prepared session per call, used up (deletes)
)

// op is one operation of the load generator. To add one, add a row to
// opTable: a name, a class, what it needs, and the call; ClientOptions
// run it through a client of its own made with them (a cache, say).
type op struct {
	name  string
	class Class
	needs need
	// clientOptions are added to the target's for the client this op runs
	// through; ops without any share one client.
	clientOptions []client.Option
	// cached: the client has a session cache; the op waits for it to
	// answer before it is measured.
	cached bool
	// do makes call number i (counted per op and phase, from 0) on c.
	do func(ctx context.Context, c bus.Sessions, f *fixture, i uint64) error
}

// opTable lists the operations, in the order a run of all of them takes.
var opTable = []op{
	{name: "create", class: Write, do: func(ctx context.Context, c bus.Sessions, f *fixture, _ uint64) error {
		login, token := f.newSession()
		_, err := c.CreateSession(ctx, login, token, bus.WithAttributes(f.attrs))
		return err
	}},
	{name: "get", class: Read, needs: needPool, do: getSession},
	{name: "cached-get", class: Read, needs: needPool, clientOptions: cacheOptions, cached: true, do: getSession},
	{name: "get-by-token", class: Read, needs: needPool, do: func(ctx context.Context, c bus.Sessions, f *fixture, i uint64) error {
		_, err := c.GetSessionByToken(ctx, f.token(i))
		return err
	}},
	{name: "cached-get-by-token", class: Read, needs: needPool, clientOptions: cacheOptions, cached: true, do: func(ctx context.Context, c bus.Sessions, f *fixture, i uint64) error {
		_, err := c.GetSessionByToken(ctx, f.token(i))
		return err
	}},
	{name: "set-attribute", class: Write, needs: needPool, do: func(ctx context.Context, c bus.Sessions, f *fixture, i uint64) error {
		return c.SetAttribute(ctx, f.sessionID(i), attrKey, attrValue(i))
	}},
	{name: "refresh", class: Write, needs: needPool, do: func(ctx context.Context, c bus.Sessions, f *fixture, i uint64) error {
		_, err := c.RefreshSession(ctx, f.sessionID(i))
		return err
	}},
	{name: "delete", class: Write, needs: needVictims, do: func(ctx context.Context, c bus.Sessions, f *fixture, i uint64) error {
		id, err := f.victim(i)
		if err != nil {
			return err
		}
		return c.DeleteSession(ctx, id)
	}},
	{name: "list", class: Read, needs: needPool, do: func(ctx context.Context, c bus.Sessions, f *fixture, i uint64) error {
		login, want := f.login(i)
		list, err := c.SessionsByLogin(ctx, login)
		if err == nil && len(list) != want {
			err = fmt.Errorf("list: %d sessions, want %d", len(list), want)
		}
		return err
	}},
}

// cacheOptions make the client of the cached reads: one with a session cache.
var cacheOptions = []client.Option{client.WithCache(client.CacheConfig{})}

func getSession(ctx context.Context, c bus.Sessions, f *fixture, i uint64) error {
	_, err := c.GetSession(ctx, f.sessionID(i))
	return err
}

// attrKey is the attribute set-attribute writes; its values are as long
// as attrValue's.
const attrKey = "bench"

func attrValue(i uint64) string { return fmt.Sprintf("value-%010d", i) }

// lookupOp returns the op named name.
func lookupOp(name string) (op, bool) {
	for _, o := range opTable {
		if o.name == name {
			return o, true
		}
	}
	return op{}, false
}

// OpNames lists the operations, in the order a run of all of them takes.
func OpNames() []string {
	names := make([]string, len(opTable))
	for i, o := range opTable {
		names[i] = o.name
	}
	return names
}

// Phase is one measured phase: one operation, or several run together,
// each taking its Weight's share of the calls.
type Phase struct {
	// Name is the operation's, or "mix".
	Name string
	Ops  []Weighted
}

// Weighted is an operation of a [Phase] and its share of the calls.
type Weighted struct {
	Op     string
	Weight int
}

// maxWeight bounds a weight of a mix (and so the length of its schedule).
const maxWeight = 10000

// ParseTests parses "a,b,c" into one phase per operation, in order, as
// redis-benchmark's -t. Errors: [ErrInvalidConfig].
func ParseTests(s string) ([]Phase, error) {
	var phases []Phase
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if _, ok := lookupOp(name); !ok {
			return nil, unknownOp(name)
		}
		phases = append(phases, Phase{Name: name, Ops: []Weighted{{Op: name, Weight: 1}}})
	}
	if len(phases) == 0 {
		return nil, fmt.Errorf("%w: no operation given", ErrInvalidConfig)
	}
	return phases, nil
}

// ParseMix parses "get=90,set-attribute=10" into one phase named "mix"
// whose calls are spread over the operations in proportion to their
// weights (1..10000; each operation once). Errors: [ErrInvalidConfig].
func ParseMix(s string) (Phase, error) {
	p := Phase{Name: "mix"}
	seen := map[string]bool{}
	for _, entry := range strings.Split(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		name, weight, ok := strings.Cut(entry, "=")
		name = strings.TrimSpace(name)
		w, err := strconv.Atoi(strings.TrimSpace(weight))
		if !ok || err != nil || w < 1 || w > maxWeight {
			return Phase{}, fmt.Errorf("%w: mix entry %q: want op=weight, weight 1..%d", ErrInvalidConfig, entry, maxWeight)
		}
		if _, ok := lookupOp(name); !ok {
			return Phase{}, unknownOp(name)
		}
		if seen[name] {
			return Phase{}, fmt.Errorf("%w: mix names %s twice", ErrInvalidConfig, name)
		}
		seen[name] = true
		p.Ops = append(p.Ops, Weighted{Op: name, Weight: w})
	}
	if len(p.Ops) == 0 {
		return Phase{}, fmt.Errorf("%w: empty mix", ErrInvalidConfig)
	}
	return p, nil
}

func unknownOp(name string) error {
	return fmt.Errorf("%w: unknown operation %q; want one of %s", ErrInvalidConfig, name, strings.Join(OpNames(), ", "))
}
