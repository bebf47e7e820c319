// Package natsapi serves a [bus.Manager] over NATS request-reply: the
// micro service that services in any language, and package client, call.
//
// A [Server] registers the micro service [Name] with one endpoint per
// operation class ("sessionbus.<class>.*.*", see bus.ClassSubject). It
// takes the method from the subject's third token and the acting service
// from its last, which the NATS server's permissions pin (or, with
// [WithCallers], maps from the importing account); never from the
// payload. It decodes each request strictly (one JSON object, no unknown
// or repeated fields, valid UTF-8, no lone surrogates), calls the
// Manager, and answers with the reply JSON or an error reply whose status
// and code come from bus.CodeOf.
//
// What both sides of the wire share (subjects, request and reply types,
// error codes) lives in package bus, so a client imports the vocabulary
// without this implementation. docs/PROTOCOL.md describes the protocol.
//
// Requests run concurrently, each on its own goroutine, bounded per
// instance ([WithMaxInFlight]) and per caller ([WithMaxInFlightPerCaller]);
// beyond either a request is refused at once with 503. Instances on one
// NATS system form a queue group. [Server.Close] drains: requests already
// delivered are answered. A Server is safe for concurrent use. Errors are
// package bus's sentinels.
package natsapi
