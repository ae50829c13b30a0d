package ec2test_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/skykoi/skykoi/internal/koi/ec2test"
)

// The SDK-driven behaviour is tested in package koi; these check what the
// SDK never sends.

func post(t *testing.T, srv *ec2test.Server, form url.Values, auth string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, srv.URL(), strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

const signed = "AWS4-HMAC-SHA256 Credential=AKID/20260102/us-west-2/ec2/aws4_request, SignedHeaders=host, Signature=00"

func TestRejects(t *testing.T) {
	srv := ec2test.NewServer()
	defer srv.Close()
	srv.AddInstance(ec2test.Instance{ID: "i-01234567", State: ec2test.Running})
	ok := url.Values{"Action": {"StopInstances"}, "Version": {ec2test.APIVersion}, "InstanceId.1": {"i-01234567"}}
	tests := []struct {
		name   string
		form   url.Values
		auth   string
		status int
		code   string
	}{
		{"unsigned", ok, "", 401, "AuthFailure"},
		{"not SigV4", ok, "Bearer x", 401, "AuthFailure"},
		{"old version", url.Values{"Action": {"StopInstances"}, "Version": {"2014-10-01"}}, signed, 400, "InvalidParameterValue"},
		{"unknown action", url.Values{"Action": {"RunInstances"}, "Version": {ec2test.APIVersion}}, signed, 400, "InvalidAction"},
		{"dry run", url.Values{"Action": {"StopInstances"}, "Version": {ec2test.APIVersion}, "InstanceId.1": {"i-01234567"}, "DryRun": {"true"}}, signed, 412, "DryRunOperation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := post(t, srv, tt.form, tt.auth)
			if status != tt.status || !strings.Contains(body, "<Response><Errors><Error><Code>"+tt.code+"</Code>") {
				t.Errorf("%d %s", status, body)
			}
		})
	}
	if srv.State("i-01234567") != ec2test.Running {
		t.Error("a rejected request changed the instance")
	}
	calls := srv.Calls()
	if len(calls) != len(tests) || calls[0].Rejected == "" || calls[4].Rejected != "" || calls[4].Region != "us-west-2" {
		t.Errorf("calls = %+v", calls)
	}
}

func TestResponseDocument(t *testing.T) {
	srv := ec2test.NewServer()
	defer srv.Close()
	srv.AddInstance(ec2test.Instance{ID: "i-01234567", State: ec2test.Running, PublicIP: "198.51.100.1", Tags: map[string]string{"b": "2", "a": "1"}})
	status, body := post(t, srv, url.Values{"Action": {"DescribeInstances"}, "Version": {ec2test.APIVersion}, "InstanceId.1": {"i-01234567"}}, signed)
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
