package protocol

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzDecodeRequest: any bytes a peer sends either decode into a well-formed
// request or give an INVALID_REQUEST naming the problem; never a panic.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{
		`{"type":"req","id":"1","method":"health"}`,
		`{"type":"req","id":"1","method":"agent","params":{"message":"hi"}}`,
		`{"type":"req","id":"1","method":"x","params":null}`,
		`{"type":"req","id":"","method":"x"}`,
		`{"type":"res","id":"1"}`,
		`[1,2]`, `"str"`, `null`, `{`, ``, `{"type":"req","id":7}`,
		`{"type":"req","id":"1","method":"x","params":[1]}`,
		"{\"type\":\"req\",\"id\":\"\xff\",\"method\":\"x\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req, id, err := DecodeRequest(data)
		if err != nil {
			if req != nil {
				t.Fatal("both a request and an error")
			}
			if err.Code != CodeInvalidRequest || !strings.HasPrefix(err.Message, "invalid frame: ") || id == "" {
				t.Fatalf("error %+v id %q", err, id)
			}
			return
		}
		if req.Type != TypeRequest || req.ID == "" || req.ID != id || req.Method == "" || len(req.ID) > maxIDLen {
			t.Fatalf("bad request %+v", req)
		}
		var obj map[string]json.RawMessage
		if json.Unmarshal(req.Params, &obj) != nil {
			t.Fatalf("params %q is not an object", req.Params)
		}
	})
}

// FuzzConnectParams: arbitrary params decode into ConnectParams or give an
// INVALID_REQUEST that names the field; never a panic.
func FuzzConnectParams(f *testing.F) {
	for _, s := range []string{
		`{"minProtocol":3,"maxProtocol":4,"client":{"id":"cli","version":"1","platform":"linux","mode":"cli"},"auth":{"token":"t"}}`,
		`{"minProtocol":"3"}`, `{"client":[]}`, `{"scopes":"operator.read"}`, `{"device":{"signedAt":"x"}}`,
		`{"caps":[1,2]}`, `{}`, `{"auth":null}`, `{"minProtocol":1e400}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !json.Valid(data) {
			return // DecodeRequest already refused the frame
		}
		var p ConnectParams
		if err := DecodeParams(data, &p); err != nil {
			if err.Code != CodeInvalidRequest || !strings.HasPrefix(err.Message, "invalid params: ") {
				t.Fatalf("error %+v", err)
			}
		}
	})
}
