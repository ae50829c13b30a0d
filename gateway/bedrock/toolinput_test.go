package bedrock

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	smithydoc "github.com/aws/smithy-go/document"
)

func TestDecodeToolInput(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    string
		wantErr string
	}{
		{"", "{}", ""},
		{"  \n", "{}", ""},
		{`{"a":1}`, `{"a":1}`, ""},
		{` {"a": 1.50} `, `{"a": 1.50}`, ""},
		{`{"s":"ü\n"}`, `{"s":"ü\n"}`, ""},
		{`{"a":`, "", "not valid JSON"},
		{`{"a":1}{"b":2}`, "", "not valid JSON"},
		{`[1,2]`, "", "not an object"},
		{`"x"`, "", "not an object"},
		{`null`, "", "not an object"},
		{`{"":1}`, "", "empty key"},
		{`{"a":[{"":1}]}`, "", "empty key"},
	} {
		got, err := decodeToolInput(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("decodeToolInput(%q) error = %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || string(got) != tc.want {
			t.Errorf("decodeToolInput(%q) = %s, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}

func TestToolInputLimit(t *testing.T) {
	var ti toolInput
	ti.add(`{"a":"`)
	ti.add(strings.Repeat("x", maxToolInputBytes))
	ti.add(`"}`)
	if _, err := ti.decode(); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("oversized input: err = %v", err)
	}
}

// FuzzDecodeToolInput feeds tool input in arbitrary chunks (as deltas
// arrive) and checks that assembly does not depend on where the chunks were
// cut, that only JSON objects are accepted, that every JSON object is, and
// that an accepted input survives the SDK's document encoding unchanged in
// meaning (numbers included), since that is how it goes back to the model.
func FuzzDecodeToolInput(f *testing.F) {
	for _, s := range []string{
		`{"path":"/home/ubuntu/koi/a.txt","limit":200}`,
		`{"n":12345678901234567890,"f":1.50,"e":-1e-7,"z":0}`,
		`{"nested":{"list":[1,"two",null,true,false,{"x":[]}]}}`,
		`{"s":"quote \" backslash \\ unicode \u00fc emoji 🐟"}`,
		`{"a":`, `[]`, ``, ` `, `{}`, `{"a":1}{"a":2}`, `{"dup":1,"dup":2}`,
	} {
		f.Add(s, uint16(3), uint16(7))
	}
	f.Fuzz(func(t *testing.T, s string, cut1, cut2 uint16) {
		a, b := int(cut1)%(len(s)+1), int(cut2)%(len(s)+1)
		if a > b {
			a, b = b, a
		}
		var ti toolInput
		for _, chunk := range []string{s[:a], s[a:b], s[b:]} {
			ti.add(chunk)
		}
		got, err := ti.decode()
		whole, wholeErr := decodeToolInput(s)
		if (err == nil) != (wholeErr == nil) || !bytes.Equal(got, whole) {
			t.Fatalf("chunked %q → %s, %v; whole → %s, %v", s, got, err, whole, wholeErr)
		}
		trimmed := strings.TrimSpace(s)
		isObject := trimmed == "" || (json.Valid([]byte(trimmed)) && trimmed[0] == '{')
		if isObject && err != nil && strings.Contains(err.Error(), "empty key") {
			return // a known limit of the SDK's document encoder
		}
		if isObject != (err == nil) {
			t.Fatalf("decodeToolInput(%q) err = %v, but isObject = %v", s, err, isObject)
		}
		if err != nil {
			return
		}

		doc, err := toDocument(got)
		if err != nil {
			t.Fatalf("toDocument(%s): %v", got, err)
		}
		enc, err := doc.MarshalSmithyDocument()
		if err != nil {
			t.Fatalf("MarshalSmithyDocument(%s): %v", got, err)
		}
		if !reflect.DeepEqual(decodeNumbers(t, enc), decodeNumbers(t, got)) {
			t.Fatalf("document round trip changed %s into %s", got, enc)
		}
	})
}

// decodeNumbers decodes JSON keeping numbers as their literal text.
func decodeNumbers(t *testing.T, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
	return v
}

func TestNumbersToDocument(t *testing.T) {
	in := map[string]any{"a": json.Number("1.0"), "l": []any{json.Number("2"), "x"}}
	want := map[string]any{"a": smithydoc.Number("1.0"), "l": []any{smithydoc.Number("2"), "x"}}
	if got, err := numbersToDocument(in); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("numbersToDocument = %#v, %v", got, err)
	}
}
