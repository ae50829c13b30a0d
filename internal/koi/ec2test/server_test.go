package ec2test_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/skykoi/skykoi/internal/koi/ec2test"
)

// The SDK-driven behaviour is tested in package koi and in sdk_test.go;
// these check what the SDK never sends.

// sign signs req with the SDK's own SigV4 signer, for service and region,
// at the given time; S3 wants the payload hash in a header and its path
// escaped once.
func sign(t *testing.T, req *http.Request, body []byte, key ec2test.Key, service, region string, at time.Time) {
	t.Helper()
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	if service == "s3" {
		req.Header.Set("X-Amz-Content-Sha256", hash)
	}
	creds := aws.Credentials{AccessKeyID: key.AccessKeyID, SecretAccessKey: key.SecretAccessKey, SessionToken: key.SessionToken}
	err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hash, service, region, at,
		func(o *v4.SignerOptions) { o.DisableURIPathEscaping = service == "s3" })
	if err != nil {
		t.Fatal(err)
	}
}

func do(t *testing.T, req *http.Request) (int, http.Header, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(body)
}

// post sends an EC2 Query request, signed with DefaultKey unless unsigned;
// auth, when set, replaces the Authorization header after signing.
func post(t *testing.T, srv *ec2test.Server, form url.Values, signed bool, auth string) (int, string) {
	t.Helper()
	body := []byte(form.Encode())
	req, err := http.NewRequest(http.MethodPost, srv.URL(), bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if signed {
		sign(t, req, body, ec2test.DefaultKey, "ec2", "us-west-2", time.Now())
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	status, _, text := do(t, req)
	return status, text
}

func TestRejects(t *testing.T) {
	srv := ec2test.NewServer()
	defer srv.Close()
	srv.AddInstance(ec2test.Instance{ID: "i-01234567", State: ec2test.Running})
	ok := url.Values{"Action": {"StopInstances"}, "Version": {ec2test.APIVersion}, "InstanceId.1": {"i-01234567"}}
	tests := []struct {
		name   string
		form   url.Values
		signed bool
		auth   string
		status int
		code   string
	}{
		{"unsigned", ok, false, "", 401, "AuthFailure"},
		{"not SigV4", ok, false, "Bearer x", 400, "IncompleteSignature"},
		{"made-up signature", ok, false, "AWS4-HMAC-SHA256 Credential=AKIDTEST/20260102/us-west-2/ec2/aws4_request, SignedHeaders=host, Signature=00", 400, "IncompleteSignature"},
		{"old version", url.Values{"Action": {"StopInstances"}, "Version": {"2014-10-01"}}, true, "", 400, "InvalidParameterValue"},
		{"unknown action", url.Values{"Action": {"RunInstances"}, "Version": {ec2test.APIVersion}}, true, "", 400, "InvalidAction"},
		{"dry run", url.Values{"Action": {"StopInstances"}, "Version": {ec2test.APIVersion}, "InstanceId.1": {"i-01234567"}, "DryRun": {"true"}}, true, "", 412, "DryRunOperation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := post(t, srv, tt.form, tt.signed, tt.auth)
			if status != tt.status || !strings.Contains(body, "<Response><Errors><Error><Code>"+tt.code+"</Code>") {
				t.Errorf("%d %s", status, body)
			}
		})
	}
	if srv.State("i-01234567") != ec2test.Running {
		t.Error("a rejected request changed the instance")
	}
	calls := srv.Calls()
	if len(calls) != len(tests) || calls[0].Rejected == "" || calls[5].Rejected != "" || calls[5].Region != "us-west-2" {
		t.Errorf("calls = %+v", calls)
	}
}

// TestSignatureChecked: every API refuses what AWS refuses, in its own
// error format, and a refused request changes nothing.
func TestSignatureChecked(t *testing.T) {
	other := ec2test.Key{AccessKeyID: "ASIAOTHER", SecretAccessKey: "other", SessionToken: "tok"}
	srv := ec2test.New(ec2test.Options{Keys: []ec2test.Key{ec2test.DefaultKey, other}, Region: "us-west-2"})
	defer srv.Close()
	srv.AddInstance(ec2test.Instance{ID: "i-01234567", State: ec2test.Running})
	srv.Put("bucket", "key", []byte("secret bytes"))

	type request struct {
		service, method, path, contentType string
		body                               []byte
		target                             string // X-Amz-Target, for JSON 1.1 APIs
	}
	ec2Stop := request{"ec2", http.MethodPost, "/", "application/x-www-form-urlencoded",
		[]byte(url.Values{"Action": {"StopInstances"}, "Version": {ec2test.APIVersion}, "InstanceId.1": {"i-01234567"}}.Encode()), ""}
	schedCreate := request{"scheduler", http.MethodPost, "/schedules/wake", "application/json",
		[]byte(`{"ScheduleExpression":"at(2030-01-02T03:04:05)","FlexibleTimeWindow":{"Mode":"OFF"},"Target":{"Arn":"` + ec2test.StartInstancesTarget + `","RoleArn":"arn:aws:iam::123456789012:role/wake","Input":"{\"InstanceIds\":[\"i-01234567\"]}"}}`), ""}
	s3Put := request{"s3", http.MethodPut, "/bucket/key", "application/octet-stream", []byte("overwritten"), ""}
	srv.AddLogGroup("/skykoi/k")
	logsCreate := request{"logs", http.MethodPost, "/", "application/x-amz-json-1.1",
		[]byte(`{"logGroupName":"/skykoi/k","logStreamName":"s"}`), "Logs_20140328.CreateLogStream"}

	wrongSecret := ec2test.DefaultKey
	wrongSecret.SecretAccessKey = "not the secret"
	noToken := ec2test.DefaultKey
	noToken.SessionToken = ""
	otherToken := ec2test.DefaultKey
	otherToken.SessionToken = "someone else's"
	unknown := ec2test.Key{AccessKeyID: "AKIDUNKNOWN", SecretAccessKey: "x"}

	type variant struct {
		name   string
		key    ec2test.Key
		region string
		at     time.Time
		after  func(*http.Request) // tampering after signing
		// codes by service
		codes map[string]string
	}
	now := time.Now()
	variants := []variant{
		{name: "unsigned", codes: map[string]string{"ec2": "AuthFailure", "scheduler": "MissingAuthenticationTokenException", "logs": "MissingAuthenticationTokenException", "s3": "AccessDenied"}},
		{name: "wrong secret", key: wrongSecret, codes: map[string]string{"ec2": "SignatureDoesNotMatch", "scheduler": "InvalidSignatureException", "logs": "InvalidSignatureException", "s3": "SignatureDoesNotMatch"}},
		{name: "unknown key", key: unknown, codes: map[string]string{"ec2": "AuthFailure", "scheduler": "UnrecognizedClientException", "logs": "UnrecognizedClientException", "s3": "InvalidAccessKeyId"}},
		{name: "no session token", key: noToken, codes: map[string]string{"ec2": "IncompleteSignature", "scheduler": "IncompleteSignatureException", "logs": "IncompleteSignatureException", "s3": "AccessDenied"}},
		{name: "another session token", key: otherToken, codes: map[string]string{"ec2": "AuthFailure", "scheduler": "UnrecognizedClientException", "logs": "UnrecognizedClientException", "s3": "InvalidToken"}},
		{name: "another key's token", key: ec2test.Key{AccessKeyID: other.AccessKeyID, SecretAccessKey: other.SecretAccessKey, SessionToken: "session"},
			codes: map[string]string{"ec2": "AuthFailure", "scheduler": "UnrecognizedClientException", "logs": "UnrecognizedClientException", "s3": "InvalidToken"}},
		{name: "other region", key: ec2test.DefaultKey, region: "eu-west-1", codes: map[string]string{"ec2": "SignatureDoesNotMatch", "scheduler": "InvalidSignatureException", "logs": "InvalidSignatureException", "s3": "AuthorizationHeaderMalformed"}},
		{name: "stale", key: ec2test.DefaultKey, at: now.Add(-time.Hour), codes: map[string]string{"ec2": "RequestExpired", "scheduler": "InvalidSignatureException", "logs": "InvalidSignatureException", "s3": "RequestTimeTooSkewed"}},
		{name: "path changed after signing", key: ec2test.DefaultKey, after: func(r *http.Request) { r.URL.Path += "x" },
			codes: map[string]string{"ec2": "SignatureDoesNotMatch", "scheduler": "InvalidSignatureException", "logs": "InvalidSignatureException", "s3": "SignatureDoesNotMatch"}},
		{name: "header added after signing", key: ec2test.DefaultKey, after: func(r *http.Request) {
			r.Header.Set("X-Amz-Date", now.Add(time.Minute).UTC().Format("20060102T150405Z"))
		},
			codes: map[string]string{"ec2": "SignatureDoesNotMatch", "scheduler": "InvalidSignatureException", "logs": "InvalidSignatureException", "s3": "SignatureDoesNotMatch"}},
	}
	for _, rq := range []request{ec2Stop, schedCreate, s3Put, logsCreate} {
		for _, v := range variants {
			t.Run(rq.service+"/"+v.name, func(t *testing.T) {
				req, err := http.NewRequest(rq.method, srv.URL()+rq.path, bytes.NewReader(rq.body))
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Content-Type", rq.contentType)
				if rq.target != "" {
					req.Header.Set("X-Amz-Target", rq.target)
				}
				if v.key.AccessKeyID != "" {
					region, at := v.region, v.at
					if region == "" {
						region = "us-west-2"
					}
					if at.IsZero() {
						at = time.Now()
					}
					sign(t, req, rq.body, v.key, rq.service, region, at)
				}
				if v.after != nil {
					v.after(req)
				}
				status, h, body := do(t, req)
				want := v.codes[rq.service]
				var got string
				switch rq.service {
				case "scheduler":
					got = h.Get("X-Amzn-ErrorType")
				case "logs":
					var e struct {
						Type string `json:"__type"`
					}
					_ = json.Unmarshal([]byte(body), &e)
					got = e.Type
				default:
					if i := strings.Index(body, "<Code>"); i >= 0 {
						got, _, _ = strings.Cut(body[i+len("<Code>"):], "<")
					}
				}
				if got != want || status < 400 {
					t.Errorf("got %d %q (%s), want %s", status, got, body, want)
				}
			})
		}
	}
	// Nothing a refused request asked for happened.
	if st := srv.State("i-01234567"); st != ec2test.Running {
		t.Errorf("instance is %s after refused stops", st)
	}
	if n := len(srv.Schedules()); n != 0 {
		t.Errorf("%d schedules after refused creates", n)
	}
	if b, _ := srv.Object("bucket", "key"); string(b) != "secret bytes" {
		t.Errorf("object is %q after refused puts", b)
	}
	for _, c := range srv.Calls() {
		if c.Rejected == "" {
			t.Errorf("a call was served: %+v", c)
		}
	}

	// And the same requests, rightly signed (the other key, its token), are
	// served.
	for _, rq := range []request{ec2Stop, schedCreate, s3Put, logsCreate} {
		req, _ := http.NewRequest(rq.method, srv.URL()+rq.path, bytes.NewReader(rq.body))
		req.Header.Set("Content-Type", rq.contentType)
		if rq.target != "" {
			req.Header.Set("X-Amz-Target", rq.target)
		}
		sign(t, req, rq.body, other, rq.service, "us-west-2", time.Now())
		if status, _, body := do(t, req); status != 200 {
			t.Errorf("%s signed right: %d %s", rq.service, status, body)
		}
	}
}

func TestResponseDocument(t *testing.T) {
	srv := ec2test.NewServer()
	defer srv.Close()
	srv.AddInstance(ec2test.Instance{ID: "i-01234567", State: ec2test.Running, PublicIP: "198.51.100.1", Tags: map[string]string{"b": "2", "a": "1"}})
	status, body := post(t, srv, url.Values{"Action": {"DescribeInstances"}, "Version": {ec2test.APIVersion}, "InstanceId.1": {"i-01234567"}}, true, "")
	for _, want := range []string{
		`<DescribeInstancesResponse xmlns="` + ec2test.Namespace + `">`,
		"<instanceState><code>16</code><name>running</name></instanceState>",
		"<ipAddress>198.51.100.1</ipAddress>",
		"<tagSet><item><key>a</key><value>1</value></item><item><key>b</key>",
	} {
		if status != 200 || !strings.Contains(body, want) {
			t.Errorf("%d: %s lacks %s", status, body, want)
		}
	}
}

func TestIMDSRequiresToken(t *testing.T) {
	md := ec2test.NewIMDS("i-01234567", "us-east-1")
	defer md.Close()
	get := func(path, token string) int {
		req, _ := http.NewRequest(http.MethodGet, md.URL()+path, nil)
		if token != "" {
			req.Header.Set("X-aws-ec2-metadata-token", token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := get("/latest/meta-data/instance-id", ""); s != 401 {
		t.Errorf("without a token: %d", s)
	}
	if s := get("/latest/meta-data/instance-id", "made-up"); s != 401 {
		t.Errorf("with a made-up token: %d", s)
	}
	req, _ := http.NewRequest(http.MethodPut, md.URL()+"/latest/api/token", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("token without a TTL: %d", resp.StatusCode)
	}
	req.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", "60")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if s := get("/latest/dynamic/instance-identity/document", string(tok)); s != 200 {
		t.Errorf("with the token: %d", s)
	}
}
