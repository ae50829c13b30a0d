package session

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Optional is one field of a patch, with the three states JSON can express:
// absent (Present false: leave the value alone), null (Null: clear it) and a
// value (set it). Decoding a JSON object into a struct of Optionals fills them
// in; for a string field an empty string clears too.
type Optional[T any] struct {
	Present bool
	Null    bool
	Value   T
}

// SetTo is an Optional that sets v.
func SetTo[T any](v T) Optional[T] { return Optional[T]{Present: true, Value: v} }

// Cleared is an Optional that clears the field.
func Cleared[T any]() Optional[T] { return Optional[T]{Present: true, Null: true} }

// UnmarshalJSON is only called for fields present in the input, which is how
// absent and null are told apart.
func (o *Optional[T]) UnmarshalJSON(b []byte) error {
	*o = Optional[T]{Present: true}
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		o.Null = true
		return nil
	}
	return json.Unmarshal(b, &o.Value)
}

// MarshalJSON writes null for an absent or cleared field.
func (o Optional[T]) MarshalJSON() ([]byte, error) {
	if !o.Present || o.Null {
		return []byte("null"), nil
	}
	return json.Marshal(o.Value)
}

// Patch is sessions.patch: per-session overrides. Decode the request's params
// into it directly ({"label":"x"} sets, {"label":null} or "" clears, a missing
// field is left alone).
type Patch struct {
	Label        Optional[string] `json:"label"`
	Model        Optional[string] `json:"model"`        // "provider/modelId"; the caller checks it names a known model
	ExecSecurity Optional[string] `json:"execSecurity"` // "deny", "allowlist" or "full"
}

const (
	maxLabel = 128
	maxModel = 256
)

func applyString(dst *string, o Optional[string], field string, check func(string) error) error {
	if !o.Present {
		return nil
	}
	if o.Null || o.Value == "" {
		*dst = ""
		return nil
	}
	if err := check(o.Value); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrInvalid, field, err)
	}
	*dst = o.Value
	return nil
}

func checkLabel(v string) error {
	if utf8.RuneCountInString(v) > maxLabel {
		return fmt.Errorf("longer than %d characters", maxLabel)
	}
	if strings.TrimSpace(v) != v || strings.IndexFunc(v, unicode.IsControl) >= 0 || !utf8.ValidString(v) {
		return fmt.Errorf("must be one line of text without leading or trailing spaces")
	}
	return nil
}

func checkModel(v string) error {
	if len(v) > maxModel || strings.IndexFunc(v, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
		return fmt.Errorf("must be a model id like amazon-bedrock/<modelId>")
	}
	return nil
}

func checkExecSecurity(v string) error {
	switch v {
	case "deny", "allowlist", "full":
		return nil
	}
	return fmt.Errorf("must be one of deny, allowlist, full; got %q", v)
}

// Patch changes key's overrides and returns the new entry. It does not count
// as activity: UpdatedAt (and so the idle timer) is unchanged.
func (s *Store) Patch(key string, p Patch) (Entry, error) {
	k, err := NormalizeKey(key)
	if err != nil {
		return Entry{}, fmt.Errorf("patching session: %w", err)
	}
	st := s.locked(k)
	if st == nil {
		return Entry{}, fmt.Errorf("patching session %s: %w", k, ErrNotFound)
	}
	defer st.mu.Unlock()
	old := st.entry
	e := old
	if err := applyString(&e.Label, p.Label, "label", checkLabel); err != nil {
		return Entry{}, fmt.Errorf("patching session %s: %w", k, err)
	}
	if err := applyString(&e.Model, p.Model, "model", checkModel); err != nil {
		return Entry{}, fmt.Errorf("patching session %s: %w", k, err)
	}
	if err := applyString(&e.ExecSecurity, p.ExecSecurity, "execSecurity", checkExecSecurity); err != nil {
		return Entry{}, fmt.Errorf("patching session %s: %w", k, err)
	}
	if e == old {
		return e, nil
	}
	s.set(st, func() { st.entry = e })
	if err := s.persistIndex(func() { st.entry = old }); err != nil {
		return Entry{}, wrapDisk("patching session "+k, s.dir, err)
	}
	return e, nil
}
