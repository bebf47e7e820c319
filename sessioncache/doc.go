// Package sessioncache keeps coherent in-memory copies of sessions: the
// client's opt-in cache (client.WithCache) and the bus's own copy of hot
// sessions use it.
//
// Coherence comes from change notices, not from expiry guesses. Every bus
// process announces the sessions a write changed on bus.CacheSubject
// ([Publisher]) before it answers the writer, so a cache that follows the
// subject ([Follower]) has dropped the old copy by the time the write is
// acknowledged. A cache fails closed: whenever a notice may have been
// missed (a sequence gap, a silent or late publisher, a slow consumer, a
// disconnect) it drops every copy and answers nothing until its feed is
// live again; and it never serves a session past its expires_at.
//
// Notices name session ids only: no token, secret or attribute value. A
// cache keeps tokens only as salted SHA-256 hashes.
package sessioncache
