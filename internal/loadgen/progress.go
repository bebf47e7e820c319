package loadgen

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// progress prints a status line about every interval while a phase or a
// setup step runs: on a terminal it rewrites one line, elsewhere it
// prints one line each time.
type progress struct {
	w        io.Writer // nil: print nothing
	interval time.Duration
	rewrite  bool
}

// start prints label and status(false) every interval until the returned
// stop is called, which prints status(true) and returns once nothing more
// is printed.
func (p *progress) start(label string, status func(final bool) string) (stop func()) {
	if p.w == nil {
		return func() {}
	}
	begin := time.Now()
	print := func(final bool) {
		line := fmt.Sprintf("%s: %s, %.1fs", label, status(final), time.Since(begin).Seconds())
		switch {
		case p.rewrite && final:
			fmt.Fprintf(p.w, "\r\033[K%s\n", line)
		case p.rewrite:
			fmt.Fprintf(p.w, "\r\033[K%s", line)
		default:
			fmt.Fprintln(p.w, line)
		}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(p.interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				print(false)
			}
		}
	})
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			wg.Wait()
			print(true)
		})
	}
}
