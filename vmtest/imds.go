package vmtest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Credentials are an instance role's temporary credentials.
type Credentials struct {
	AccessKeyID, SecretAccessKey, Token string
}

// Instance is what the metadata service tells the instance about itself.
type Instance struct {
	ID               string // i-…
	Region           string
	AvailabilityZone string
	Type             string
	ImageID          string
	// MAC is the primary interface's address, lower case: cloud-init
	// configures the interface whose address it is, so it must be the
	// guest NIC's.
	MAC       string
	LocalIPv4 string
	// PublicIPv4 empty is an instance without a public address: the key is
	// absent (404), as on EC2.
	PublicIPv4 string
	Role       string
	Creds      Credentials
	UserData   []byte
}

// IMDS is a fake EC2 instance metadata service, complete enough for
// cloud-init's Ec2 datasource to crawl it as it does on EC2, and insisting
// on IMDSv2: every read needs a token from PUT /latest/api/token.
// Directories answer with their listings (cloud-init walks them, and
// retries a 404 for minutes), and any dated API version is served the same
// tree as "latest".
type IMDS struct {
	srv *httptest.Server

	mu       sync.Mutex
	inst     Instance
	tokens   map[string]time.Time // token → expiry
	requests []IMDSRequest
}

// IMDSRequest is one request the fake received.
type IMDSRequest struct {
	Method, Path string
	Status       int
	// Instance is the instance id the service was answering for.
	Instance string
}

// NewIMDS starts the fake on 127.0.0.1. Close it when done.
func NewIMDS(inst Instance) *IMDS {
	m := &IMDS{inst: inst, tokens: map[string]time.Time{}}
	m.srv = httptest.NewServer(http.HandlerFunc(m.serve))
	return m
}

// URL is the fake's base URL, http://127.0.0.1:port.
func (m *IMDS) URL() string { return m.srv.URL }

// Addr is the fake's host:port, for a guest forward.
func (m *IMDS) Addr() string { return m.srv.Listener.Addr().String() }

// Close stops the server.
func (m *IMDS) Close() { m.srv.Close() }

// SetInstance makes the service answer for another instance, as the same
// link-local address does on a replacement instance. Tokens issued before
// are forgotten: they belonged to the other instance.
func (m *IMDS) SetInstance(inst Instance) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.inst = inst
	m.tokens = map[string]time.Time{}
}

// Requests returns every request received, in order.
func (m *IMDS) Requests() []IMDSRequest {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]IMDSRequest(nil), m.requests...)
}

const (
	imdsTokenHeader = "X-aws-ec2-metadata-token"
	imdsTTLHeader   = "X-aws-ec2-metadata-token-ttl-seconds"
)

// versionRe matches the API versions cloud-init and the SDKs ask for.
var versionRe = regexp.MustCompile(`^(latest|1\.0|\d{4}-\d{2}-\d{2})$`)

func (m *IMDS) serve(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	inst := m.inst
	m.mu.Unlock()
	status := m.answer(w, r, inst)
	m.mu.Lock()
	m.requests = append(m.requests, IMDSRequest{Method: r.Method, Path: r.URL.Path, Status: status, Instance: inst.ID})
	m.mu.Unlock()
}

func (m *IMDS) answer(w http.ResponseWriter, r *http.Request, inst Instance) int {
	if r.URL.Path == "/latest/api/token" {
		return m.issueToken(w, r)
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return imdsFail(w, http.StatusMethodNotAllowed)
	}
	m.mu.Lock()
	expiry, ok := m.tokens[r.Header.Get(imdsTokenHeader)]
	m.mu.Unlock()
	if !ok || time.Now().After(expiry) {
		// IMDSv2 required: no token, no metadata.
		return imdsFail(w, http.StatusUnauthorized)
	}
	p := strings.TrimPrefix(r.URL.Path, "/")
	if p == "" {
		return text(w, "1.0\n2021-03-23\nlatest")
	}
	version, rest, _ := strings.Cut(p, "/")
	if !versionRe.MatchString(version) {
		return imdsFail(w, http.StatusNotFound)
	}
	switch {
	case rest == "":
		return text(w, "dynamic\nmeta-data\nuser-data")
	case rest == "user-data":
		if len(inst.UserData) == 0 {
			return imdsFail(w, http.StatusNotFound)
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = w.Write(inst.UserData)
		return http.StatusOK
	}
	tree, sub, _ := strings.Cut(rest, "/")
	var leaves map[string]string
	switch tree {
	case "meta-data":
		leaves = metadataLeaves(inst)
	case "dynamic":
		leaves = dynamicLeaves(inst)
	default:
		return imdsFail(w, http.StatusNotFound)
	}
	if v, ok := leaves[sub]; ok {
		return text(w, v)
	}
	if listing, ok := listDir(leaves, sub); ok {
		return text(w, listing)
	}
	return imdsFail(w, http.StatusNotFound)
}

func (m *IMDS) issueToken(w http.ResponseWriter, r *http.Request) int {
	if r.Method != http.MethodPut {
		// A GET cannot fetch a token, so a server tricked into fetching a
		// URL (SSRF) cannot either.
		return imdsFail(w, http.StatusMethodNotAllowed)
	}
	if r.Header.Get("X-Forwarded-For") != "" {
		// IMDS refuses tokens to requests that went through a proxy.
		return imdsFail(w, http.StatusForbidden)
	}
	ttl, err := strconv.Atoi(r.Header.Get(imdsTTLHeader))
	if err != nil || ttl < 1 || ttl > 21600 {
		return imdsFail(w, http.StatusBadRequest)
	}
	var b [32]byte
	_, _ = rand.Read(b[:])
	token := hex.EncodeToString(b[:])
	m.mu.Lock()
	m.tokens[token] = time.Now().Add(time.Duration(ttl) * time.Second)
	m.mu.Unlock()
	w.Header().Set(imdsTTLHeader, strconv.Itoa(ttl))
	return text(w, token)
}

// metadataLeaves is the meta-data tree of an instance, by path. Directory
// listings are derived from it.
func metadataLeaves(inst Instance) map[string]string {
	localName := "ip-" + strings.ReplaceAll(inst.LocalIPv4, ".", "-") + "." + inst.Region + ".compute.internal"
	mac := "network/interfaces/macs/" + inst.MAC + "/"
	l := map[string]string{
		"ami-id":                              inst.ImageID,
		"ami-launch-index":                    "0",
		"ami-manifest-path":                   "(unknown)",
		"block-device-mapping/ami":            "/dev/xvda",
		"block-device-mapping/root":           "/dev/xvda",
		"hostname":                            localName,
		"instance-action":                     "none",
		"instance-id":                         inst.ID,
		"instance-life-cycle":                 "on-demand",
		"instance-type":                       inst.Type,
		"local-hostname":                      localName,
		"local-ipv4":                          inst.LocalIPv4,
		"mac":                                 inst.MAC,
		"placement/availability-zone":         inst.AvailabilityZone,
		"placement/availability-zone-id":      "usw2-az1",
		"placement/region":                    inst.Region,
		"profile":                             "default-hvm",
		"reservation-id":                      "r-0" + strings.TrimPrefix(inst.ID, "i-0"),
		"security-groups":                     "skykoi-koi",
		"services/domain":                     "amazonaws.com",
		"services/partition":                  "aws",
		mac + "device-number":                 "0",
		mac + "interface-id":                  "eni-0a1b2c3d4e5f60718",
		mac + "local-hostname":                localName,
		mac + "local-ipv4s":                   inst.LocalIPv4,
		mac + "mac":                           inst.MAC,
		mac + "owner-id":                      "123456789012",
		mac + "security-group-ids":            "sg-0a1b2c3d4e5f60718",
		mac + "security-groups":               "skykoi-koi",
		mac + "subnet-id":                     "subnet-0a1b2c3d4e5f60718",
		mac + "subnet-ipv4-cidr-block":        "10.0.1.0/24",
		mac + "vpc-id":                        "vpc-0a1b2c3d4e5f60718",
		mac + "vpc-ipv4-cidr-block":           "10.0.0.0/16",
		mac + "vpc-ipv4-cidr-blocks":          "10.0.0.0/16",
		"metadata-options/http-tokens":        "required",
		"metadata-options/http-put-hop-limit": "1",
	}
	if inst.PublicIPv4 != "" {
		public := "ec2-" + strings.ReplaceAll(inst.PublicIPv4, ".", "-") + "." + inst.Region + ".compute.amazonaws.com"
		l["public-ipv4"] = inst.PublicIPv4
		l["public-hostname"] = public
		l[mac+"public-ipv4s"] = inst.PublicIPv4
		l[mac+"public-hostname"] = public
	}
	if inst.Role != "" {
		now := time.Now().UTC()
		info, _ := json.MarshalIndent(map[string]string{
			"Code":               "Success",
			"LastUpdated":        now.Format(time.RFC3339),
			"InstanceProfileArn": "arn:aws:iam::123456789012:instance-profile/" + inst.Role,
			"InstanceProfileId":  "AIPAVMTESTPROFILE0001",
		}, "", "  ")
		creds, _ := json.MarshalIndent(map[string]string{
			"Code":            "Success",
			"LastUpdated":     now.Format(time.RFC3339),
			"Type":            "AWS-HMAC",
			"AccessKeyId":     inst.Creds.AccessKeyID,
			"SecretAccessKey": inst.Creds.SecretAccessKey,
			"Token":           inst.Creds.Token,
			"Expiration":      now.Add(6 * time.Hour).Format(time.RFC3339),
		}, "", "  ")
		l["iam/info"] = string(info)
		l["iam/security-credentials/"+inst.Role] = string(creds)
	}
	return l
}

func dynamicLeaves(inst Instance) map[string]string {
	doc, _ := json.MarshalIndent(map[string]any{
		"accountId":               "123456789012",
		"architecture":            "x86_64",
		"availabilityZone":        inst.AvailabilityZone,
		"billingProducts":         nil,
		"devpayProductCodes":      nil,
		"imageId":                 inst.ImageID,
		"instanceId":              inst.ID,
		"instanceType":            inst.Type,
		"kernelId":                nil,
		"marketplaceProductCodes": nil,
		"pendingTime":             time.Now().UTC().Format(time.RFC3339),
		"privateIp":               inst.LocalIPv4,
		"ramdiskId":               nil,
		"region":                  inst.Region,
		"version":                 "2017-09-30",
	}, "", "  ")
	return map[string]string{"instance-identity/document": string(doc)}
}

// listDir lists a directory of the tree (dir is "" for the root or ends in
// "/"): one entry a line, subdirectories with a trailing "/".
func listDir(leaves map[string]string, dir string) (string, bool) {
	if dir != "" && !strings.HasSuffix(dir, "/") {
		// EC2 answers a directory asked without its slash too.
		dir += "/"
	}
	seen := map[string]bool{}
	for p := range leaves {
		rest, ok := strings.CutPrefix(p, dir)
		if !ok {
			continue
		}
		if i := strings.Index(rest, "/"); i >= 0 {
			rest = rest[:i+1]
		}
		seen[rest] = true
	}
	if len(seen) == 0 {
		return "", false
	}
	entries := make([]string, 0, len(seen))
	for e := range seen {
		entries = append(entries, e)
	}
	sort.Strings(entries)
	return strings.Join(entries, "\n"), true
}

func text(w http.ResponseWriter, s string) int {
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write([]byte(s))
	return http.StatusOK
}

func imdsFail(w http.ResponseWriter, status int) int {
	http.Error(w, http.StatusText(status), status)
	return status
}
