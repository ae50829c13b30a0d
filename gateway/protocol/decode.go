package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// InvalidID is the id of a response to a frame whose own id is unusable.
const InvalidID = "invalid"

// maxIDLen bounds request ids: they are echoed back and logged.
const maxIDLen = 256

// DecodeRequest parses one inbound text frame. On failure it returns the
// frame's id when one could be read (else InvalidID) with an INVALID_REQUEST
// error saying what is wrong.
func DecodeRequest(data []byte) (*Request, string, *Error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) || (len(bytes.TrimSpace(data)) > 0 && bytes.TrimSpace(data)[0] != '{' && json.Valid(data)) {
			return nil, InvalidID, Errorf(CodeInvalidRequest, "invalid frame: must be a JSON object")
		}
		return nil, InvalidID, Errorf(CodeInvalidRequest, "invalid frame: not valid JSON: "+jsonErrorText(err))
	}
	if raw == nil {
		return nil, InvalidID, Errorf(CodeInvalidRequest, "invalid frame: must be a JSON object")
	}
	id := InvalidID
	var idStr string
	idOK := json.Unmarshal(raw["id"], &idStr) == nil && idStr != "" && len(idStr) <= maxIDLen
	if idOK {
		id = idStr
	}
	var typ string
	if json.Unmarshal(raw["type"], &typ) != nil || typ != TypeRequest {
		return nil, id, Errorf(CodeInvalidRequest, `invalid frame: type must be "req"`)
	}
	if !idOK {
		return nil, id, Errorf(CodeInvalidRequest, fmt.Sprintf("invalid frame: id must be a non-empty string of at most %d characters", maxIDLen))
	}
	var method string
	if json.Unmarshal(raw["method"], &method) != nil || method == "" {
		return nil, id, Errorf(CodeInvalidRequest, "invalid frame: method must be a non-empty string")
	}
	params := raw["params"]
	if p := bytes.TrimSpace(params); len(p) == 0 || string(p) == "null" {
		params = json.RawMessage("{}")
	} else if p[0] != '{' {
		return nil, id, Errorf(CodeInvalidRequest, "invalid frame: params must be an object")
	}
	return &Request{Type: TypeRequest, ID: id, Method: method, Params: params}, id, nil
}

// DecodeParams unmarshals params into v, turning a wrong type into an
// INVALID_REQUEST that names the field. Unknown fields are ignored, as the
// protocol says.
func DecodeParams(params json.RawMessage, v any) *Error {
	if len(params) == 0 {
		params = json.RawMessage("{}")
	}
	if err := json.Unmarshal(params, v); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			field := ute.Field
			if field == "" {
				return Errorf(CodeInvalidRequest, "invalid params: must be an object")
			}
			return Errorf(CodeInvalidRequest, fmt.Sprintf("invalid params: %s must be %s, got %s", field, jsonTypeName(ute.Type.Kind().String()), ute.Value))
		}
		return Errorf(CodeInvalidRequest, "invalid params: "+jsonErrorText(err))
	}
	return nil
}

func jsonTypeName(kind string) string {
	switch {
	case kind == "string":
		return "a string"
	case strings.HasPrefix(kind, "int"), strings.HasPrefix(kind, "uint"):
		return "an integer"
	case strings.HasPrefix(kind, "float"):
		return "a number"
	case kind == "bool":
		return "a boolean"
	case kind == "slice", kind == "array":
		return "an array"
	case kind == "struct", kind == "map":
		return "an object"
	}
	return "a " + kind
}

func jsonErrorText(err error) string {
	return strings.TrimPrefix(err.Error(), "json: ")
}
