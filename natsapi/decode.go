package natsapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/session-bus/session-bus/bus"
	"github.com/session-bus/session-bus/internal/textutil"
)

// decodeRequest decodes a request body strictly into v: valid UTF-8, one
// JSON object and nothing after it, no unknown fields, no field given
// twice (names compared case-insensitively, as encoding/json matches them),
// no key given twice in the "attributes" object (compared exactly), no
// lone UTF-16 surrogate in a \u escape, field types as declared, and every
// field named in required present and not null. An empty body counts as
// {}. Failures are bus.ErrInvalidInput.
func decodeRequest(data []byte, v any, required ...string) error {
	// encoding/json replaces invalid UTF-8 silently, so check first.
	if !utf8.Valid(data) {
		return fmt.Errorf("%w: body is not valid UTF-8", bus.ErrInvalidInput)
	}
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		data = []byte("{}")
	}
	if data[0] != '{' {
		return fmt.Errorf("%w: body must be a JSON object", bus.ErrInvalidInput)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonErr(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: body must hold one JSON object only", bus.ErrInvalidInput)
	}
	// encoding/json lets the last of repeated names win and reads a lone
	// surrogate as U+FFFD: refuse both, so one meaning has one spelling.
	if err := checkStrict(data); err != nil {
		return err
	}
	// A required field that decoded to its zero value may be absent or
	// null: only then pay for a second, exact look at the body.
	if len(required) > 0 && anyZero(v, required) {
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(data, &fields); err != nil {
			return jsonErr(err)
		}
		for _, f := range required {
			if raw, ok := fields[f]; !ok || string(raw) == "null" {
				return fmt.Errorf("%w: field %q is required", bus.ErrInvalidInput, f)
			}
		}
	}
	return nil
}

// fieldIndex caches, per request struct type, the field index of each JSON name.
var fieldIndex sync.Map // reflect.Type -> map[string]int

// anyZero reports whether any of the named JSON fields of the struct v
// points to holds its zero value.
func anyZero(v any, names []string) bool {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		return true
	}
	rv = rv.Elem()
	idx, ok := fieldIndex.Load(rv.Type())
	if !ok {
		m := map[string]int{}
		for i := range rv.NumField() {
			name, _, _ := strings.Cut(rv.Type().Field(i).Tag.Get("json"), ",")
			m[name] = i
		}
		idx, _ = fieldIndex.LoadOrStore(rv.Type(), m)
	}
	for _, n := range names {
		i, ok := idx.(map[string]int)[n]
		if !ok || rv.Field(i).IsZero() {
			return true
		}
	}
	return false
}

// jsonErr describes a decode error without echoing the payload.
func jsonErr(err error) error {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		if typeErr.Field != "" {
			return fmt.Errorf("%w: field %q must be %s", bus.ErrInvalidInput, typeErr.Field, jsonKind(typeErr.Type.Kind().String()))
		}
		return fmt.Errorf("%w: body must be a JSON object", bus.ErrInvalidInput)
	}
	var timeErr *time.ParseError
	if errors.As(err, &timeErr) {
		return fmt.Errorf("%w: times must be RFC 3339 strings", bus.ErrInvalidInput)
	}
	var syntaxErr *json.SyntaxError
	if errors.As(err, &syntaxErr) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: malformed JSON", bus.ErrInvalidInput)
	}
	// Unknown fields and time formats: the decoder's message names the
	// field with %q and holds no value.
	return fmt.Errorf("%w: %s", bus.ErrInvalidInput, strings.TrimPrefix(err.Error(), "json: "))
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "map", "struct", "ptr":
		return "an object"
	case "slice":
		return "an array"
	case "uint64", "int", "int64":
		return "a non-negative integer"
	}
	return "of another type"
}

// checkStrict refuses what encoding/json accepts but reads ambiguously:
// a name given twice in the top-level object (compared as encoding/json
// matches names to fields, case-insensitively) or in the "attributes"
// object (compared exactly, as map keys), a null attribute value, and a \u escape that is a lone
// UTF-16 surrogate, anywhere (encoding/json reads it as U+FFFD, so two
// wire strings would decode to one). data must be one JSON object that
// encoding/json has read: the walk is one pass, and on anything else it
// stops with "malformed JSON".
func checkStrict(data []byte) error {
	s := jsonScan{data: data}
	s.ws()
	top := nameSet{fold: true}
	err := s.object(func(name []byte) error {
		if top.add(name) {
			return fmt.Errorf("%w: field %q is given twice (names match case-insensitively)", bus.ErrInvalidInput, textutil.Truncate(string(name), 64))
		}
		if !bytes.EqualFold(name, []byte("attributes")) || s.peek() != '{' {
			return s.skipValue()
		}
		var keys nameSet
		return s.object(func(key []byte) error {
			if keys.add(key) {
				return fmt.Errorf("%w: attribute key %q is given twice", bus.ErrInvalidInput, textutil.Truncate(string(key), 64))
			}
			if s.peek() == 'n' { // encoding/json reads null as ""
				return fmt.Errorf("%w: attribute %q must be a string, not null", bus.ErrInvalidInput, textutil.Truncate(string(key), 64))
			}
			return s.skipValue()
		})
	})
	if err != nil {
		return err
	}
	if s.ws(); s.i != len(data) {
		return errMalformed()
	}
	return nil
}

func errMalformed() error { return fmt.Errorf("%w: malformed JSON", bus.ErrInvalidInput) }

// nameSet finds a repeated name among the members of one object.
type nameSet struct {
	fold bool                // compare as encoding/json matches fields
	few  [maxPairwise][]byte // the first names, compared pairwise
	n    int                 // how many of few are set
	many map[string]struct{} // every name once there are more
}

// maxPairwise is how many names nameSet compares pairwise before it
// switches to a map: requests have a handful of fields.
const maxPairwise = 16

// add records name and reports whether an equal one came before.
func (s *nameSet) add(name []byte) bool {
	if s.many == nil {
		for _, n := range s.few[:s.n] {
			if bytes.Equal(n, name) || s.fold && bytes.EqualFold(n, name) {
				return true
			}
		}
		if s.n < maxPairwise {
			s.few[s.n] = name
			s.n++
			return false
		}
		s.many = make(map[string]struct{}, 2*maxPairwise)
		for _, n := range s.few {
			s.many[s.key(n)] = struct{}{}
		}
	}
	k := s.key(name)
	if _, ok := s.many[k]; ok {
		return true
	}
	s.many[k] = struct{}{}
	return false
}

// key is name as the map compares it: folded as encoding/json folds
// names (ASCII upper case; other runes to the smallest of their simple
// fold orbit), so equal keys are exactly the bytes.EqualFold pairs.
func (s *nameSet) key(name []byte) string {
	if !s.fold {
		return string(name)
	}
	out := make([]byte, 0, len(name))
	for i := 0; i < len(name); {
		if c := name[i]; c < utf8.RuneSelf {
			if 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			}
			out = append(out, c)
			i++
			continue
		}
		r, n := utf8.DecodeRune(name[i:])
		for {
			r2 := unicode.SimpleFold(r)
			if r2 <= r {
				r = r2
				break
			}
			r = r2
		}
		out = utf8.AppendRune(out, r)
		i += n
	}
	return string(out)
}

// jsonScan walks the bytes of a JSON text that encoding/json has read.
type jsonScan struct {
	data []byte
	i    int
}

func (s *jsonScan) ws() {
	for s.i < len(s.data) {
		switch s.data[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// peek returns the next byte, or 0 at the end.
func (s *jsonScan) peek() byte {
	if s.i < len(s.data) {
		return s.data[s.i]
	}
	return 0
}

// object reads an object, calling member with each name (unescaped) when
// the scan is at the start of its value; member must read the value.
func (s *jsonScan) object(member func(name []byte) error) error {
	if s.peek() != '{' {
		return errMalformed()
	}
	s.i++
	s.ws()
	if s.peek() == '}' {
		s.i++
		return nil
	}
	for {
		name, err := s.str(true)
		if err != nil {
			return err
		}
		s.ws()
		if s.peek() != ':' {
			return errMalformed()
		}
		s.i++
		s.ws()
		if err := member(name); err != nil {
			return err
		}
		s.ws()
		switch s.peek() {
		case ',':
			s.i++
			s.ws()
		case '}':
			s.i++
			return nil
		default:
			return errMalformed()
		}
	}
}

// skipValue reads one value, checking the escapes of every string in it.
// Nesting is counted, not recursed into.
func (s *jsonScan) skipValue() error {
	depth := 0
	for s.i < len(s.data) {
		switch s.data[s.i] {
		case '"':
			if _, err := s.str(false); err != nil {
				return err
			}
		case '{', '[':
			depth++
			s.i++
			continue
		case '}', ']':
			if depth == 0 { // the end of the enclosing value
				return nil
			}
			depth--
			s.i++
		case ',', ' ', '\t', '\n', '\r':
			if depth == 0 {
				return nil
			}
			s.i++
			continue
		default: // a byte of a number or literal
			s.i++
			continue
		}
		if depth == 0 {
			return nil
		}
	}
	return errMalformed()
}

// str reads a string and refuses a lone surrogate in its escapes. With
// want, it returns the string's value: a slice of data when the string
// has no escape.
func (s *jsonScan) str(want bool) ([]byte, error) {
	if s.peek() != '"' {
		return nil, errMalformed()
	}
	start := s.i
	s.i++
	escaped := false
	for s.i < len(s.data) {
		switch s.data[s.i] {
		case '"':
			s.i++
			if !want {
				return nil, nil
			}
			if !escaped {
				return s.data[start+1 : s.i-1], nil
			}
			var v string
			if err := json.Unmarshal(s.data[start:s.i], &v); err != nil {
				return nil, errMalformed()
			}
			return []byte(v), nil
		case '\\':
			escaped = true
			if err := s.escape(); err != nil {
				return nil, err
			}
		default:
			s.i++
		}
	}
	return nil, errMalformed()
}

// escape reads the escape at s.i. A \u escape of a high surrogate must be
// followed at once by one of a low surrogate; a low one must follow a high.
func (s *jsonScan) escape() error {
	if s.i+1 >= len(s.data) {
		return errMalformed()
	}
	if s.data[s.i+1] != 'u' {
		s.i += 2
		return nil
	}
	r, ok := hex4(s.data, s.i+2)
	if !ok {
		return errMalformed()
	}
	s.i += 6
	switch {
	case r >= 0xDC00 && r <= 0xDFFF:
		return errSurrogate()
	case r >= 0xD800 && r <= 0xDBFF:
		if s.i+1 >= len(s.data) || s.data[s.i] != '\\' || s.data[s.i+1] != 'u' {
			return errSurrogate()
		}
		low, ok := hex4(s.data, s.i+2)
		if !ok || low < 0xDC00 || low > 0xDFFF {
			return errSurrogate()
		}
		s.i += 6
	}
	return nil
}

func errSurrogate() error {
	return fmt.Errorf("%w: a \\u escape is a lone UTF-16 surrogate (an unpaired \\ud800-\\udfff)", bus.ErrInvalidInput)
}

// hex4 reads the four hex digits at data[i:].
func hex4(data []byte, i int) (rune, bool) {
	if i+4 > len(data) {
		return 0, false
	}
	var r rune
	for _, c := range data[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}
