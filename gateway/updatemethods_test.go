package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/skykoi/skykoi/gateway/protocol"
	"github.com/skykoi/skykoi/gateway/update"
	"github.com/skykoi/skykoi/internal/koi/ec2test"
)

// TestUpdateMethods drives update.run and update.status over a real
// WebSocket: the binary comes from the S3 stand-in with the role's
// credentials, only an admin may ask, and bad requests stage nothing while
// the gateway keeps serving.
func TestUpdateMethods(t *testing.T) {
	const bucket, region = "skykoi-artifacts-123456789012", "us-west-2"
	creds := ec2test.Key{AccessKeyID: "ASIAGATEWAYTEST", SecretAccessKey: "Z2F0ZXdheS1zZWNyZXQ=", SessionToken: "Z2F0ZXdheS10b2tlbg=="}
	s3 := ec2test.New(ec2test.Options{Keys: []ec2test.Key{creds}, Region: region})
	defer s3.Close()
	bin := []byte("#!/bin/sh\necho new gateway\n")
	sum := sha256.Sum256(bin)
	sha := hex.EncodeToString(sum[:])
	s3.Put(bucket, update.Key(sha), bin)

	env := map[string]string{update.EnvBucket: bucket, update.EnvRegion: region, update.EnvEndpoint: s3.URL()}
	ts := startServer(t, withOptions(func(o *Options) {
		o.Getenv = func(k string) string { return env[k] }
		o.AWSCredentials = credentials.NewStaticCredentialsProvider(creds.AccessKeyID, creds.SecretAccessKey, creds.SessionToken)
	}))
	admin, hello := dialConnected(t, ts, asAdmin)
	for _, m := range []string{"update.run", "update.status"} {
		if !strings.Contains(strings.Join(hello.Features.Methods, ","), m) {
			t.Errorf("hello-ok does not list %s", m)
		}
	}
	if res := admin.call("update.status", nil); !res.OK || !strings.Contains(string(res.Payload), `"state":""`) {
		t.Errorf("update.status before any update: %s %+v", res.Payload, res.Error)
	}

	// Neither a reader nor the default operator (read and write) may.
	for _, scopes := range [][]string{{protocol.ScopeRead}, nil} {
		c, _ := dialConnected(t, ts, func(p map[string]any) {
			if scopes != nil {
				p["scopes"] = scopes
			}
		})
		if res := c.call("update.run", map[string]any{"sha256": sha}); res.OK || res.Error.Code != protocol.CodeForbidden {
			t.Fatalf("a client with scopes %v ran an update: %+v", scopes, res.Error)
		}
	}

	staged := filepath.Join(ts.dir, update.DirName, update.StagedFile)
	for _, bad := range []struct {
		params map[string]any
		code   string
		msg    string
	}{
		{map[string]any{"sha256": "nothex"}, protocol.CodeInvalidRequest, "64 lowercase hex"},
		{map[string]any{"sha256": strings.Repeat("0", 64)}, protocol.CodeUnavailable, "NoSuchKey"},
		{map[string]any{"sha256": strings.Repeat("0", 64), "key": update.Key(sha)}, protocol.CodeInvalidRequest, "not the requested"},
	} {
		res := admin.call("update.run", bad.params)
		if res.OK || res.Error.Code != bad.code || !strings.Contains(res.Error.Message, bad.msg) {
			t.Errorf("update.run %v: %+v, want %s mentioning %q", bad.params, res.Error, bad.code, bad.msg)
		}
		if _, err := os.Stat(staged); err == nil {
			t.Fatalf("update.run %v staged a binary", bad.params)
		}
	}

	res := admin.call("update.run", map[string]any{"sha256": sha})
	if !res.OK {
		t.Fatalf("update.run: %+v", res.Error)
	}
	if got, err := os.ReadFile(staged); err != nil || string(got) != string(bin) {
		t.Fatalf("staged %q, %v", got, err)
	}
	if res := admin.call("update.status", nil); !res.OK || !strings.Contains(string(res.Payload), `"state":"requested"`) {
		t.Errorf("update.status after update.run: %s", res.Payload)
	}
	if res := admin.call("update.run", map[string]any{"sha256": sha}); res.OK || !strings.Contains(res.Error.Message, "already in progress") {
		t.Errorf("a second update.run: %+v", res.Error)
	}
	if res := admin.call("health", nil); !res.OK {
		t.Errorf("the gateway stopped serving: %+v", res.Error)
	}
}

func TestUpdateOffWithoutBucket(t *testing.T) {
	ts := startServer(t)
	c, _ := dialConnected(t, ts, asAdmin)
	res := c.call("update.run", map[string]any{"sha256": strings.Repeat("a", 64)})
	if res.OK || res.Error.Code != protocol.CodeUnavailable || !strings.Contains(res.Error.Message, update.EnvBucket) {
		t.Errorf("update.run with no bucket: %+v", res.Error)
	}
}

func asAdmin(p map[string]any) { p["scopes"] = []string{protocol.ScopeAdmin} }
