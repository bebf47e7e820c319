// Package events names the session events of session-bus: their types,
// subjects and the headers that carry a change through the store, so that
// events are derived from the store's own change stream.
package events
