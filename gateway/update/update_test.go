package update_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/skykoi/skykoi/gateway/update"
	"github.com/skykoi/skykoi/internal/koi/ec2test"
	"github.com/skykoi/skykoi/internal/testwait"
)

const (
	region = "us-west-2"
	bucket = "skykoi-artifacts-123456789012"
)

func shaOf(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// s3Fake is the AWS stand-in's S3: path-style GetObject, SigV4 checked with
// temporary credentials, as the instance role signs.
func s3Fake(t *testing.T) (*ec2test.Server, ec2test.Key) {
	creds := ec2test.Key{AccessKeyID: "ASIAUPDATETEST", SecretAccessKey: "c2VjcmV0LXNlY3JldC1zZWNyZXQ=", SessionToken: "dG9rZW4tdG9rZW4="}
	s := ec2test.New(ec2test.Options{Keys: []ec2test.Key{creds}, Region: region})
	t.Cleanup(s.Close)
	return s, creds
}

func TestRun(t *testing.T) {
	good := []byte("#!/bin/sh\necho the new gateway\n")
	other := []byte("#!/bin/sh\necho something else\n")
	cases := []struct {
		name string
		// put is the object stored under the request's key (nil: none).
		put      []byte
		req      update.Request
		wrongKey bool // sign with a key the fake does not know
		noBucket bool
		busy     bool
		code     string // the refusal's Error.Code, "" for success
		msg      string
	}{
		{name: "ok", put: good, req: update.Request{SHA256: shaOf(good)}},
		{name: "explicit key and timeout", put: good, req: update.Request{SHA256: shaOf(good), Key: update.Key(shaOf(good)), TimeoutMs: 30000}},
		{name: "digest mismatch", put: other, req: update.Request{SHA256: shaOf(good)}, code: "mismatch", msg: "not the requested"},
		{name: "no such object", req: update.Request{SHA256: shaOf(good)}, code: "download", msg: "NoSuchKey"},
		{name: "credentials refused", put: good, req: update.Request{SHA256: shaOf(good)}, wrongKey: true, code: "download", msg: "InvalidAccessKeyId"},
		{name: "updates off", put: good, req: update.Request{SHA256: shaOf(good)}, noBucket: true, code: "unavailable", msg: update.EnvBucket},
		{name: "already running", put: good, req: update.Request{SHA256: shaOf(good)}, busy: true, code: "busy", msg: "already in progress"},
		{name: "bad sha", req: update.Request{SHA256: strings.ToUpper(shaOf(good))}, code: "invalid", msg: "64 lowercase hex"},
		{name: "key outside the prefix", req: update.Request{SHA256: shaOf(good), Key: "releases/x"}, code: "invalid", msg: "bin/skykoi-"},
		{name: "dot segment", req: update.Request{SHA256: shaOf(good), Key: "bin/../x"}, code: "invalid", msg: "S3 key"},
		{name: "timeout too short", req: update.Request{SHA256: shaOf(good), TimeoutMs: 500}, code: "invalid", msg: "timeoutMs"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s3, creds := s3Fake(t)
			key := tc.req.Key
			if key == "" {
				key = update.Key(tc.req.SHA256)
			}
			if tc.put != nil {
				s3.Put(bucket, key, tc.put)
			}
			if tc.wrongKey {
				creds.AccessKeyID = "ASIAWHOISTHIS"
			}
			state := t.TempDir()
			o := update.Options{StateDir: state, Bucket: bucket, Region: region, Endpoint: s3.URL(),
				Credentials: credentials.NewStaticCredentialsProvider(creds.AccessKeyID, creds.SecretAccessKey, creds.SessionToken)}
			if tc.noBucket {
				o.Bucket = ""
			}
			u := update.New(o)
			if tc.busy {
				if err := os.MkdirAll(u.Dir(), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(u.Dir(), update.RequestFile), []byte("{}"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), testwait.Patience(t))
			defer cancel()
			st, err := u.Run(ctx, tc.req, "vA")
			staged := filepath.Join(u.Dir(), update.StagedFile)
			if tc.code != "" {
				var ue *update.Error
				if !errors.As(err, &ue) || ue.Code != tc.code || !strings.Contains(err.Error(), tc.msg) {
					t.Fatalf("err = %v, want a %q refusal mentioning %q", err, tc.code, tc.msg)
				}
				if _, err := os.Stat(staged); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("a refused update left a staged binary (%v)", err)
				}
				if !tc.busy {
					if _, err := os.Stat(filepath.Join(u.Dir(), update.RequestFile)); !errors.Is(err, os.ErrNotExist) {
						t.Errorf("a refused update left a request for the supervisor (%v)", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if st.State != update.StateRequested || st.SHA256 != tc.req.SHA256 {
				t.Errorf("status %+v", st)
			}
			got, err := os.ReadFile(staged)
			if err != nil || !bytes.Equal(got, tc.put) {
				t.Fatalf("staged binary %q (%v), want the object's bytes", got, err)
			}
			if fi, _ := os.Stat(staged); fi.Mode().Perm() != 0o755 {
				t.Errorf("staged binary mode %v, want 0755", fi.Mode().Perm())
			}
			var req map[string]any
			b, err := os.ReadFile(filepath.Join(u.Dir(), update.RequestFile))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &req); err != nil {
				t.Fatal(err)
			}
			wantTimeout := float64(90)
			if tc.req.TimeoutMs != 0 {
				wantTimeout = float64(tc.req.TimeoutMs / 1000)
			}
			if req["sha256"] != tc.req.SHA256 || req["key"] != key || req["timeoutSec"] != wantTimeout || req["fromVersion"] != "vA" {
				t.Errorf("request.json = %s", b)
			}
			read, err := u.ReadStatus()
			if err != nil || read.State != update.StateRequested {
				t.Errorf("ReadStatus = %+v, %v", read, err)
			}
			// A second update while this one waits is refused.
			if _, err := u.Run(ctx, tc.req, "vA"); err == nil || !strings.Contains(err.Error(), "already in progress") {
				t.Errorf("a second update.run: %v, want busy", err)
			}
		})
	}
}

func TestReadStatusNone(t *testing.T) {
	u := update.New(update.Options{StateDir: t.TempDir()})
	st, err := u.ReadStatus()
	if err != nil || st.State != "" {
		t.Fatalf("no update yet: %+v, %v", st, err)
	}
}
