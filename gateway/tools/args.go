package tools

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// argError is a problem with the model's arguments. Its text names the tool,
// the field and what was expected, because the model fixes its next call from
// this message alone.
type argError struct {
	tool     string
	problems []string
}

func (e *argError) Error() string {
	return fmt.Sprintf("invalid arguments for %s: %s", e.tool, strings.Join(e.problems, "; "))
}

// args reads one tool call's arguments field by field. Decoding into a struct
// with encoding/json would report Go type names ("of type int64") and stop at
// the first problem; the model is better served by JSON words and every
// problem at once.
type args struct {
	tool     string
	fields   map[string]json.RawMessage
	problems []string
}

// parseArgs checks that input is a JSON object and notes keys not in known.
// Unknown keys are refused rather than ignored: a misspelt "timeout" for
// "timeoutSec" would otherwise silently do something other than asked.
func parseArgs(tool string, input json.RawMessage, known ...string) (*args, error) {
	a := &args{tool: tool}
	trimmed := bytes.TrimSpace(input)
	if len(trimmed) == 0 {
		// Some model responses carry an empty input for a call without
		// arguments; treat it as {} so required fields are reported by name.
		a.fields = map[string]json.RawMessage{}
		return a, nil
	}
	if trimmed[0] != '{' {
		if !json.Valid(trimmed) {
			return nil, &argError{tool, []string{"not valid JSON: " + syntaxProblem(trimmed)}}
		}
		return nil, &argError{tool, []string{"arguments must be a JSON object, got " + describe(trimmed)}}
	}
	if err := json.Unmarshal(trimmed, &a.fields); err != nil {
		return nil, &argError{tool, []string{"not valid JSON: " + syntaxProblem(trimmed)}}
	}
	var unknown []string
	for k := range a.fields {
		if !slices.Contains(known, k) {
			unknown = append(unknown, strconv.Quote(clip(k, 40)))
		}
	}
	if len(unknown) > 0 {
		// Recorded, not returned, so the model hears about the other fields'
		// problems in the same reply.
		slices.Sort(unknown)
		a.problem("unknown field %s (%s takes: %s)", strings.Join(unknown, ", "), tool, strings.Join(known, ", "))
	}
	return a, nil
}

// syntaxProblem explains why data is not JSON, with the byte offset.
func syntaxProblem(data []byte) string {
	var v any
	err := json.Unmarshal(data, &v)
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("%s (at byte %d)", se.Error(), se.Offset)
	}
	if err != nil {
		return err.Error()
	}
	return "unexpected structure"
}

func (a *args) problem(format string, v ...any) {
	a.problems = append(a.problems, fmt.Sprintf(format, v...))
}

// err returns every problem found so far, or nil.
func (a *args) err() error {
	if len(a.problems) == 0 {
		return nil
	}
	return &argError{a.tool, a.problems}
}

// get returns a field's raw value; absent and null are the same, since models
// send null for optional fields they mean to leave out.
func (a *args) get(name string, required bool, want string) (json.RawMessage, bool) {
	raw, ok := a.fields[name]
	if ok {
		raw = bytes.TrimSpace(raw)
	}
	if !ok || len(raw) == 0 || string(raw) == "null" {
		if required {
			a.problem("missing required field %q (%s)", name, want)
		}
		return nil, false
	}
	return raw, true
}

func (a *args) str(name string, required bool) (string, bool) {
	raw, ok := a.get(name, required, "a string")
	if !ok {
		return "", false
	}
	var s string
	if raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		a.problem("field %q: expected a string, got %s", name, describe(raw))
		return "", false
	}
	return s, true
}

func (a *args) boolean(name string) bool {
	raw, ok := a.get(name, false, "true or false")
	if !ok {
		return false
	}
	switch string(raw) {
	case "true":
		return true
	case "false":
		return false
	}
	a.problem("field %q: expected true or false, got %s", name, describe(raw))
	return false
}

// integer reads an optional whole number in [lo, hi]; def when absent.
func (a *args) integer(name string, lo, hi, def int64) int64 {
	raw, ok := a.get(name, false, "an integer")
	if !ok {
		return def
	}
	if raw[0] != '-' && (raw[0] < '0' || raw[0] > '9') {
		a.problem("field %q: expected an integer, got %s", name, describe(raw))
		return def
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		// 5.0 and 1e3 are whole numbers a model may well write.
		f, ferr := strconv.ParseFloat(string(raw), 64)
		if ferr != nil || f != math.Trunc(f) || f < math.MinInt64 || f >= math.MaxInt64 {
			a.problem("field %q: expected an integer, got %s", name, describe(raw))
			return def
		}
		n = int64(f)
	}
	if n < lo || n > hi {
		a.problem("field %q: must be from %d to %d, got %d", name, lo, hi, n)
		return def
	}
	return n
}

// strMap reads an optional object whose values are all strings.
func (a *args) strMap(name string) map[string]string {
	raw, ok := a.get(name, false, "an object of strings")
	if !ok {
		return nil
	}
	var m map[string]json.RawMessage
	if raw[0] != '{' || json.Unmarshal(raw, &m) != nil {
		a.problem("field %q: expected an object of string values, got %s", name, describe(raw))
		return nil
	}
	out := make(map[string]string, len(m))
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := bytes.TrimSpace(m[k])
		var s string
		if len(v) == 0 || v[0] != '"' || json.Unmarshal(v, &s) != nil {
			a.problem("field %q: value of %q: expected a string, got %s", name, clip(k, 40), describe(v))
			continue
		}
		out[k] = s
	}
	return out
}

// describe names a JSON value's type, with a short excerpt, for messages.
func describe(raw []byte) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '"':
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return "string " + strconv.Quote(clip(s, 40))
		}
		return "a malformed string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "boolean " + clip(string(raw), 5)
	case 'n':
		return "null"
	}
	return "number " + clip(string(raw), 40)
}

// clip shortens s to at most n runes for quoting in a message.
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n]) + "…"
}
