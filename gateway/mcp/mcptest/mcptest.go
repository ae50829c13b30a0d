// Package mcptest provides real MCP servers, built from the official go-sdk,
// for tests: the same tools over stdio (a small program the test builds
// with `go build`) and over streamable HTTP (an httptest server).
//
// Tools every server has:
//   - echo {text}: answers "echo: <text>"
//   - sleep {ms}: waits that long, or until the call is cancelled
//   - getenv {name}: answers the server's value of that environment
//     variable, or "<unset>"
//   - fail {message}: a tool error (isError) carrying message
//
// The stdio program also has crash {}: it exits at once with status 3.
package mcptest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

type EchoIn struct {
	Text string `json:"text" jsonschema:"the text to echo"`
}

type SleepIn struct {
	Ms int `json:"ms" jsonschema:"how long to sleep, in milliseconds"`
}

type GetenvIn struct {
	Name string `json:"name" jsonschema:"the variable's name"`
}

type FailIn struct {
	Message string `json:"message" jsonschema:"the error to report"`
}

func text(s string) *sdk.CallToolResult {
	return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: s}}}
}

// NewServer returns an MCP server named name with the common tools.
func NewServer(name string) *sdk.Server {
	s := sdk.NewServer(&sdk.Implementation{Name: name, Version: "test"}, nil)
	sdk.AddTool(s, &sdk.Tool{Name: "echo", Description: "Echo the text back."},
		func(_ context.Context, _ *sdk.CallToolRequest, in EchoIn) (*sdk.CallToolResult, any, error) {
			return text("echo: " + in.Text), nil, nil
		})
	sdk.AddTool(s, &sdk.Tool{Name: "sleep", Description: "Sleep for ms milliseconds."},
		func(ctx context.Context, _ *sdk.CallToolRequest, in SleepIn) (*sdk.CallToolResult, any, error) {
			t := time.NewTimer(time.Duration(in.Ms) * time.Millisecond)
			defer t.Stop()
			select {
			case <-t.C:
				return text("slept"), nil, nil
			case <-ctx.Done():
				return nil, nil, ctx.Err()
			}
		})
	sdk.AddTool(s, &sdk.Tool{Name: "getenv", Description: "Read an environment variable of the server."},
		func(_ context.Context, _ *sdk.CallToolRequest, in GetenvIn) (*sdk.CallToolResult, any, error) {
			v, ok := os.LookupEnv(in.Name)
			if !ok {
				v = "<unset>"
			}
			return text(v), nil, nil
		})
	sdk.AddTool(s, &sdk.Tool{Name: "fail", Description: "Report a tool error."},
		func(_ context.Context, _ *sdk.CallToolRequest, in FailIn) (*sdk.CallToolResult, any, error) {
			r := text(in.Message)
			r.IsError = true
			return r, nil, nil
		})
	return s
}

// HTTPServer serves NewServer(name) over streamable HTTP at /mcp. When
// wantHeader is non-empty, requests without that exact Authorization
// header are refused with 401, as a real remote server would.
func HTTPServer(t testing.TB, name, wantAuth string) *httptest.Server {
	t.Helper()
	srv := NewServer(name)
	h := sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return srv }, nil)
	mux := http.NewServeMux()
	mux.HandleFunc("/mcp", func(w http.ResponseWriter, r *http.Request) {
		if wantAuth != "" && r.Header.Get("Authorization") != wantAuth {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	return ts
}

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
	buildOut  []byte
)

// StdioServer builds the stdio server program once per test binary and
// returns its path. Its flags: -hang reads stdin and never answers (not
// even initialize); -name sets the server's name.
func StdioServer(t testing.TB) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("the go command is needed to build the MCP test server: %v", err)
		}
		t.Skipf("the go command is needed to build the MCP test server: %v", err)
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "skykoi-mcptest-")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "stdioserver")
		cmd := exec.Command(goBin, "build", "-o", buildPath, "github.com/skykoi/skykoi/gateway/mcp/mcptest/stdioserver")
		buildOut, buildErr = cmd.CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("building the MCP test server: %v\n%s", buildErr, buildOut)
	}
	return buildPath
}
