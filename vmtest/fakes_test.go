package vmtest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/ec2rolecreds"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
)

// These tests check the fakes against the real AWS SDK and curl, so the VM
// test's passing means the guest spoke the real protocols. They are fast
// and run in every `go test`.

func testCredentials() Credentials {
	return Credentials{
		AccessKeyID:     "ASIAVMTESTKEY0000001",
		SecretAccessKey: "vMtEsT/sEcReT+kEy000000000000000000000000",
		Token:           "IQoJb3JpZ2luX2VjEvmtest//////////sessiontoken==",
	}
}

const (
	testBucket = "skykoi-artifacts-123456789012"
	testKey    = "releases/vmtest/skykoi-linux-amd64"
)

func emptyHash() string {
	sum := sha256.Sum256(nil)
	return hex.EncodeToString(sum[:])
}

func do(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestS3AcceptsCurl signs the way the bootstrap does (curl --aws-sigv4 with
// the credentials in a config on stdin), since that is what the guest runs.
func TestS3AcceptsCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl is not installed")
	}
	testCreds := testCredentials()
	s3 := newS3("us-west-2", testCreds)
	defer s3.Close()
	s3.Put(testBucket, testKey, []byte("the gateway"))
	out := filepath.Join(t.TempDir(), "skykoi")
	cmd := exec.Command(curl, "-fsS", "-K", "-", "--aws-sigv4", "aws:amz:us-west-2:s3",
		"-H", "x-amz-content-sha256: "+emptyHash(), "-o", out, s3.URL()+"/"+testBucket+"/"+testKey)
	cmd.Stdin = strings.NewReader("user = \"" + testCreds.AccessKeyID + ":" + testCreds.SecretAccessKey + "\"\n" +
		"header = \"x-amz-security-token: " + testCreds.Token + "\"\n")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("curl: %v\n%s\n%+v", err, b, s3.Calls())
	}
	if got, _ := os.ReadFile(out); string(got) != "the gateway" {
		t.Fatalf("curl got %q", got)
	}
}

func testInstance() Instance {
	return Instance{
		ID: "i-0a1b2c3d4e5f60001", Region: "us-west-2", AvailabilityZone: "us-west-2a", Type: "t3.medium",
		ImageID: "ami-0a1b2c3d4e5f60718", MAC: "0a:58:4b:01:00:01", LocalIPv4: "10.0.1.23",
		PublicIPv4: "203.0.113.10", Role: "skykoi-koi", Creds: testCredentials(), UserData: []byte("#cloud-config\n"),
	}
}

// TestIMDSWithSDK reads the fake with the SDK's IMDS client and instance
// role provider, as the gateway on a Koi does.
func TestIMDSWithSDK(t *testing.T) {
	m := NewIMDS(testInstance())
	defer m.Close()
	ctx := context.Background()
	cl := imds.New(imds.Options{Endpoint: m.URL(), EnableFallback: aws.FalseTernary})

	read := func(path string) string {
		t.Helper()
		out, err := cl.GetMetadata(ctx, &imds.GetMetadataInput{Path: path})
		if err != nil {
			t.Fatalf("meta-data/%s: %v", path, err)
		}
		defer out.Content.Close()
		b, _ := io.ReadAll(out.Content)
		return string(b)
	}
	if got := read("instance-id"); got != "i-0a1b2c3d4e5f60001" {
		t.Errorf("instance-id %q", got)
	}
	root := strings.Split(read(""), "\n")
	for _, want := range []string{"iam/", "instance-id", "network/", "placement/", "public-ipv4"} {
		if !slices.Contains(root, want) {
			t.Errorf("the meta-data listing lacks %q: %v", want, root)
		}
	}
	if got := read("network/interfaces/macs/"); got != "0a:58:4b:01:00:01/" {
		t.Errorf("macs listing %q", got)
	}
	doc, err := cl.GetInstanceIdentityDocument(ctx, &imds.GetInstanceIdentityDocumentInput{})
	if err != nil || doc.InstanceID != "i-0a1b2c3d4e5f60001" || doc.Region != "us-west-2" {
		t.Errorf("identity document %+v, %v", doc, err)
	}
	ud, err := cl.GetUserData(ctx, &imds.GetUserDataInput{})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(ud.Content); string(b) != "#cloud-config\n" {
		t.Errorf("user-data %q", b)
	}
	creds, err := ec2rolecreds.New(func(o *ec2rolecreds.Options) { o.Client = cl }).Retrieve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	testCreds := testCredentials()
	if creds.AccessKeyID != testCreds.AccessKeyID || creds.SecretAccessKey != testCreds.SecretAccessKey ||
		creds.SessionToken != testCreds.Token || !creds.CanExpire || creds.Expires.Before(time.Now()) {
		t.Errorf("role credentials %+v", creds)
	}

	// A replacement instance: another id from the same address.
	next := testInstance()
	next.ID, next.PublicIPv4 = "i-0a1b2c3d4e5f60002", ""
	m.SetInstance(next)
	if got := read("instance-id"); got != "i-0a1b2c3d4e5f60002" {
		t.Errorf("after SetInstance: instance-id %q", got)
	}
	if _, err := cl.GetMetadata(ctx, &imds.GetMetadataInput{Path: "public-ipv4"}); err == nil {
		t.Error("public-ipv4 of an instance without one must be a 404")
	}
}

func TestIMDSRequiresToken(t *testing.T) {
	m := NewIMDS(testInstance())
	defer m.Close()
	for _, path := range []string{"/latest/meta-data/instance-id", "/2021-03-23/user-data", "/latest/meta-data/iam/security-credentials/skykoi-koi"} {
		resp, err := http.Get(m.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s without a token: %d, want 401", path, resp.StatusCode)
		}
	}
	resp, err := http.Get(m.URL() + "/latest/api/token")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET of a token: %d, want 405", resp.StatusCode)
	}
}

// TestIMDSListings walks the tree the way cloud-init's crawler does: every
// directory listed, every entry reachable.
func TestIMDSListings(t *testing.T) {
	m := NewIMDS(testInstance())
	defer m.Close()
	req, _ := http.NewRequest(http.MethodPut, m.URL()+"/latest/api/token", nil)
	req.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", "21600")
	code, token := do(t, req)
	if code != 200 || token == "" {
		t.Fatalf("token: %d %q", code, token)
	}
	get := func(path string) (int, string) {
		r, _ := http.NewRequest(http.MethodGet, m.URL()+path, nil)
		r.Header.Set("X-aws-ec2-metadata-token", token)
		return do(t, r)
	}
	var walk func(dir string) int
	walk = func(dir string) int {
		code, body := get(dir)
		if code != 200 {
			t.Fatalf("GET %s: %d", dir, code)
		}
		n := 0
		for _, e := range strings.Split(body, "\n") {
			if strings.HasSuffix(e, "/") {
				n += walk(dir + e)
				continue
			}
			if c, _ := get(dir + e); c != 200 {
				t.Errorf("GET %s%s: %d", dir, e, c)
			}
			n++
		}
		return n
	}
	if n := walk("/2021-03-23/meta-data/"); n < 30 {
		t.Errorf("only %d leaves under meta-data", n)
	}
	if code, body := get("/2021-03-23/dynamic/instance-identity/"); code != 200 || body != "document" {
		t.Errorf("dynamic/instance-identity/: %d %q", code, body)
	}
	if code, _ := get("/2021-03-23/meta-data/no-such-key"); code != 404 {
		t.Errorf("missing key: %d, want 404", code)
	}
}
