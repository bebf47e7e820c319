package main

import "testing"

// TestRun keeps the example working: it runs it end to end.
func TestRun(t *testing.T) {
	if err := run(); err != nil {
		t.Fatal(err)
	}
}
