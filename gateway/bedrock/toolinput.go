package bedrock

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	bedrockdoc "github.com/aws/aws-sdk-go-v2/service/bedrockruntime/document"
	smithydoc "github.com/aws/smithy-go/document"
)

// maxToolInputBytes bounds one tool call's input. Model output is bounded
// by maxTokens anyway; this keeps a misbehaving stream from growing a block
// without limit.
const maxToolInputBytes = 16 << 20

// toolInput accumulates the input JSON of one tool call from its deltas.
type toolInput struct {
	buf      strings.Builder
	overflow bool
}

func (t *toolInput) add(chunk string) {
	if t.overflow || t.buf.Len()+len(chunk) > maxToolInputBytes {
		t.overflow = true
		return
	}
	t.buf.WriteString(chunk)
}

// decode returns the complete input. See decodeToolInput.
func (t *toolInput) decode() (json.RawMessage, error) {
	if t.overflow {
		return nil, fmt.Errorf("tool input is larger than %d bytes", maxToolInputBytes)
	}
	return decodeToolInput(t.buf.String())
}

// decodeToolInput checks the concatenated input deltas of a tool call. No
// deltas means a call without arguments ({}); anything else must be one
// JSON object, the only input shape the Converse API accepts back in the
// next request. The model's bytes are kept (only surrounding space is
// trimmed) so the caller sees exactly what the model wrote.
func decodeToolInput(s string) (json.RawMessage, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return json.RawMessage("{}"), nil
	}
	if !json.Valid([]byte(s)) {
		return nil, errors.New("tool input is not valid JSON (the answer may have been cut off by maxTokens)")
	}
	if s[0] != '{' {
		return nil, errors.New("tool input is JSON but not an object")
	}
	// Checked here rather than only when the next request is built: an input
	// the SDK cannot send back would make every later turn fail.
	if _, err := toDocument(json.RawMessage(s)); err != nil {
		return nil, fmt.Errorf("tool input cannot be sent back to Bedrock: %w", err)
	}
	return json.RawMessage(s), nil
}

// toDocument converts raw JSON into the SDK's document type without losing
// number precision: numbers stay decimal strings (document.Number) instead
// of becoming float64.
func toDocument(raw json.RawMessage) (bedrockdoc.Interface, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		raw = json.RawMessage("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("decoding JSON: %w", err)
	}
	if dec.More() {
		return nil, errors.New("decoding JSON: more than one value")
	}
	v, err := numbersToDocument(v)
	if err != nil {
		return nil, err
	}
	return bedrockdoc.NewLazyDocument(v), nil
}

// errEmptyKey: the SDK's document encoder refuses an empty object key, and
// its request serializer drops that error and writes no value at all, which
// would send a body that is not JSON.
var errEmptyKey = errors.New(`JSON object with an empty key ("") is not supported by the AWS SDK document encoder`)

func numbersToDocument(v any) (any, error) {
	switch t := v.(type) {
	case json.Number:
		return smithydoc.Number(t), nil
	case map[string]any:
		for k, e := range t {
			if k == "" {
				return nil, errEmptyKey
			}
			c, err := numbersToDocument(e)
			if err != nil {
				return nil, err
			}
			t[k] = c
		}
		return t, nil
	case []any:
		for i, e := range t {
			c, err := numbersToDocument(e)
			if err != nil {
				return nil, err
			}
			t[i] = c
		}
		return t, nil
	}
	return v, nil
}
