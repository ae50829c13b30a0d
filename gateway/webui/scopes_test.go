package webui

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"testing"

	"github.com/skykoi/skykoi/gateway/client"
)

// TestPageAsksForOwnerScopes keeps the page's scope list equal to the Go
// clients': the page is JavaScript and cannot import client.OwnerScopes, so
// this test is what makes that list the one source of truth.
func TestPageAsksForOwnerScopes(t *testing.T) {
	src, err := os.ReadFile("static/app.js")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^const SCOPES = (\[[^\]]*\]);`).FindSubmatch(src)
	if m == nil {
		t.Fatal("static/app.js has no `const SCOPES = [...];` line")
	}
	var got []string
	if err := json.Unmarshal(m[1], &got); err != nil {
		t.Fatalf("SCOPES in static/app.js is not a JSON list of strings: %v", err)
	}
	if want := client.OwnerScopes(); !slices.Equal(got, want) {
		t.Errorf("static/app.js asks for %q; the Go clients (client.OwnerScopes) for %q", got, want)
	}
}
