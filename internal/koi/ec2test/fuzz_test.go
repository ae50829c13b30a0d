package ec2test_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/skykoi/skykoi/internal/koi/ec2test"
)

// FuzzParseAt: any expression either parses to a time that prints back to
// the same expression, or is refused; it never panics.
func FuzzParseAt(f *testing.F) {
	for _, s := range []string{"at(2030-01-02T03:04:05)", "at(2030-02-30T03:04:05)", "at(2030-01-02T03:04)", "at()", "rate(5 minutes)", "at(9999-12-31T23:59:59)"} {
		f.Add(s, "")
		f.Add(s, "Europe/Berlin")
	}
	f.Fuzz(func(t *testing.T, expr, tz string) {
		at, err := ec2test.ParseAt(expr, tz)
		if err != nil {
			return
		}
		if back := "at(" + at.Format("2006-01-02T15:04:05") + ")"; back != expr {
			t.Fatalf("%q parsed to %v, which prints as %q", expr, at, back)
		}
	})
}

// FuzzAuthorization: whatever Authorization header arrives, the stand-in
// answers with an error and serves nothing.
func FuzzAuthorization(f *testing.F) {
	for _, s := range []string{
		"",
		"AWS4-HMAC-SHA256 Credential=AKIDTEST/20260102/us-west-2/ec2/aws4_request, SignedHeaders=host;x-amz-date, Signature=00",
		"AWS4-HMAC-SHA256 Credential=AKIDTEST/20260102/us-west-2/scheduler/aws4_request,SignedHeaders=,Signature=",
		"AWS4-HMAC-SHA256 Credential=/////, SignedHeaders=b;a, Signature=x",
		"Bearer x",
	} {
		f.Add(s, "/schedules/x")
		f.Add(s, "/bucket/key")
	}
	srv := ec2test.NewServer()
	defer srv.Close()
	f.Fuzz(func(t *testing.T, auth, path string) {
		if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, " ?#%\r\n\t") {
			return
		}
		req := httptest.NewRequest(http.MethodGet, srv.URL()+path, nil)
		req.RequestURI = ""
		req.Header.Set("Authorization", auth)
		req.Header.Set("X-Amz-Date", "20260102T030405Z")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return // a header net/http will not send
		}
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Fatalf("served %s with Authorization %q: %d", path, auth, resp.StatusCode)
		}
	})
}
