// Package bus is the session manager of session-bus: a Go port of sa-token's
// distributed session module (DistributedSessionManager), re-founded on NATS.
//
// A [Manager] holds the whole API: services register and verify themselves
// ([Manager.RegisterService], [Manager.VerifyService]); any service creates,
// reads, refreshes, annotates and ends sessions that every other service
// sees. Sessions live in a [Store]: [MemoryStore] in-process, or
// kvstore.Store on a JetStream KeyValue bucket whose server enforces the TTL.
//
// Policies are options: an idle timeout that slides on use
// ([WithTouchInterval] bounds how often a read becomes a write), an absolute
// lifetime cap ([WithMaxLifetime]) and a cap on sessions per login
// ([WithMaxSessions]).
//
// Every write is compare-and-set on the session's revision with bounded
// retry, so concurrent writers from many services never lose an update, and
// an update never brings a deleted session back. Tokens are never stored:
// the store sees a keyed fingerprint only. Service secrets are stored as
// argon2id hashes.
//
// The acting service of every change comes from the context
// ([ContextWithService]); package natsapi, which serves a Manager over
// NATS, fills it from an identity the server asserts, never from a request
// payload. The wire vocabulary that natsapi and package client share lives
// here, so a client needs no server code: request subjects ([Subject],
// [MethodSubject], [ParseSubject]), request and reply types
// ([CreateRequest], [ErrorReply], ...) and error codes ([CodeOf],
// [ErrorForCode], [ErrorForStatus], [ErrorMessage]).
//
// Errors are sentinels matchable with errors.Is; each carries a stable wire
// code ([Code]) so that the same errors.Is holds over NATS through package
// client. A Manager is safe for concurrent use.
package bus
