package bus

import (
	"fmt"
	"strings"
)

// SubjectPrefix is the first token of every request subject of the bus.
const SubjectPrefix = "sessionbus"

// Class groups operations by what they may do, so that NATS permissions can
// grant them by class: a service X may publish to
// "sessionbus.<class>.*.X" for the classes it is allowed.
type Class string

// Operation classes.
const (
	ClassRead    Class = "read"    // reads of sessions and attributes
	ClassWrite   Class = "write"   // changes of sessions and attributes
	ClassService Class = "service" // a service verifying its credential
	ClassAdmin   Class = "admin"   // registering and removing services
)

// Classes lists every class, in the order the NATS service registers
// endpoints.
var Classes = []Class{ClassRead, ClassWrite, ClassService, ClassAdmin}

// Method names one operation on the wire: the third token of its subject.
type Method string

// Methods of the wire protocol. docs/PROTOCOL.md describes each request
// and reply.
const (
	MethodGet             Method = "get"
	MethodGetByToken      Method = "get_by_token"
	MethodGetAttribute    Method = "get_attribute"
	MethodListByLogin     Method = "list_by_login"
	MethodTouch           Method = "touch"
	MethodCreate          Method = "create"
	MethodUpdate          Method = "update"
	MethodRefresh         Method = "refresh"
	MethodDelete          Method = "delete"
	MethodDeleteByToken   Method = "delete_by_token"
	MethodSetAttribute    Method = "set_attribute"
	MethodRemoveAttribute Method = "remove_attribute"
	MethodDeleteAll       Method = "delete_all"
	MethodVerify          Method = "verify"
	MethodRegisterService Method = "register_service"
	MethodRotateService   Method = "rotate_service"
	MethodRemoveService   Method = "remove_service"
	MethodListServices    Method = "list_services"
)

// methodClass is the one table of which class each method belongs to; the
// NATS service dispatches with it and the client builds subjects with it.
var methodClass = map[Method]Class{
	MethodGet:             ClassRead,
	MethodGetByToken:      ClassRead,
	MethodGetAttribute:    ClassRead,
	MethodListByLogin:     ClassRead,
	MethodTouch:           ClassRead,
	MethodCreate:          ClassWrite,
	MethodUpdate:          ClassWrite,
	MethodRefresh:         ClassWrite,
	MethodDelete:          ClassWrite,
	MethodDeleteByToken:   ClassWrite,
	MethodSetAttribute:    ClassWrite,
	MethodRemoveAttribute: ClassWrite,
	MethodDeleteAll:       ClassWrite,
	MethodVerify:          ClassService,
	MethodRegisterService: ClassAdmin,
	MethodRotateService:   ClassAdmin,
	MethodRemoveService:   ClassAdmin,
	MethodListServices:    ClassAdmin,
}

// ClassOf returns the class of a method, and false for an unknown method.
func ClassOf(m Method) (Class, bool) {
	c, ok := methodClass[m]
	return c, ok
}

// Subject returns the request subject "sessionbus.<class>.<method>.<caller>".
// caller is the acting service: the bus takes it from this token only.
func Subject(class Class, m Method, caller string) string {
	return SubjectPrefix + "." + string(class) + "." + string(m) + "." + caller
}

// MethodSubject returns the request subject of m for caller, or
// [ErrUnknownOperation] for a method not in the protocol.
func MethodSubject(m Method, caller string) (string, error) {
	c, ok := ClassOf(m)
	if !ok {
		return "", fmt.Errorf("%w: %q", ErrUnknownOperation, m)
	}
	return Subject(c, m, caller), nil
}

// ClassSubject returns the subject a service endpoint of class c listens
// on: "sessionbus.<class>.*.*".
func ClassSubject(c Class) string {
	return SubjectPrefix + "." + string(c) + ".*.*"
}

// ParseSubject splits a request subject "sessionbus.<class>.<method>.<caller>"
// into its class, method and caller, and reports whether it has that
// shape. It checks no token further: the method may be unknown (see
// [ClassOf]) and the caller invalid (see [ValidateServiceID]).
func ParseSubject(subject string) (class Class, method Method, caller string, ok bool) {
	rest, ok := strings.CutPrefix(subject, SubjectPrefix+".")
	if !ok {
		return "", "", "", false
	}
	c, rest, ok1 := strings.Cut(rest, ".")
	m, caller, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || strings.Contains(caller, ".") {
		return "", "", "", false
	}
	return Class(c), Method(m), caller, true
}
