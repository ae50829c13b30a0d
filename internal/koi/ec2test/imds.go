package ec2test

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
)

// IMDS header names (IMDSv2).
const (
	tokenHeader    = "X-aws-ec2-metadata-token"
	tokenTTLHeader = "X-aws-ec2-metadata-token-ttl-seconds"
)

// IMDS is a fake EC2 instance metadata service that insists on IMDSv2:
// a session token from PUT /latest/api/token must accompany every read, as
// on an instance launched with HttpTokens=required (which a Koi is).
type IMDS struct {
	srv                *httptest.Server
	instanceID, region string

	mu       sync.Mutex
	tags     map[string]string
	tokens   map[string]bool
	requests []IMDSRequest
}

// IMDSRequest is one request the fake metadata service received.
type IMDSRequest struct {
	Method, Path string
	// Status is the HTTP status it answered with.
	Status int
}

// NewIMDS starts a fake metadata service for an instance in a region.
// Close it when done.
func NewIMDS(instanceID, region string) *IMDS {
	m := &IMDS{instanceID: instanceID, region: region, tokens: map[string]bool{}}
	m.srv = httptest.NewServer(http.HandlerFunc(m.serveHTTP))
	return m
}

// SetTag makes an instance tag readable at meta-data/tags/instance/<key>,
// as on an instance launched with InstanceMetadataTags enabled.
func (m *IMDS) SetTag(key, value string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.tags == nil {
		m.tags = map[string]string{}
	}
	m.tags[key] = value
}

// URL is the endpoint to give the SDK's IMDS client, e.g.
// http://127.0.0.1:41234.
func (m *IMDS) URL() string { return m.srv.URL }

// Close stops the server.
func (m *IMDS) Close() { m.srv.Close() }

// Requests returns every request received, in order.
func (m *IMDS) Requests() []IMDSRequest {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]IMDSRequest(nil), m.requests...)
}

func (m *IMDS) serveHTTP(w http.ResponseWriter, r *http.Request) {
	status := m.answer(w, r)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.requests = append(m.requests, IMDSRequest{Method: r.Method, Path: r.URL.Path, Status: status})
}

func (m *IMDS) answer(w http.ResponseWriter, r *http.Request) int {
	if r.URL.Path == "/latest/api/token" {
		if r.Method != http.MethodPut {
			// IMDS refuses a GET of the token so that a misdirected
			// request (SSRF) cannot fetch one.
			return fail(w, http.StatusMethodNotAllowed)
		}
		ttl, err := strconv.Atoi(r.Header.Get(tokenTTLHeader))
		if err != nil || ttl < 1 || ttl > 21600 {
			return fail(w, http.StatusBadRequest)
		}
		var b [24]byte
		_, _ = rand.Read(b[:])
		token := hex.EncodeToString(b[:])
		m.mu.Lock()
		m.tokens[token] = true
		m.mu.Unlock()
		w.Header().Set(tokenTTLHeader, strconv.Itoa(ttl))
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte(token))
		return http.StatusOK
	}
	if r.Method != http.MethodGet {
		return fail(w, http.StatusMethodNotAllowed)
	}
	m.mu.Lock()
	ok := m.tokens[r.Header.Get(tokenHeader)]
	m.mu.Unlock()
	if !ok {
		return fail(w, http.StatusUnauthorized)
	}
	switch r.URL.Path {
	case "/latest/meta-data/instance-id":
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte(m.instanceID))
	case "/latest/meta-data/placement/region":
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte(m.region))
	case "/latest/dynamic/instance-identity/document":
		doc, _ := json.MarshalIndent(map[string]any{
			"accountId":        "123456789012",
			"architecture":     "arm64",
			"availabilityZone": m.region + "a",
			"imageId":          "ami-0123456789abcdef0",
			"instanceId":       m.instanceID,
			"instanceType":     "t4g.medium",
			"pendingTime":      "2026-01-01T00:00:00Z",
			"privateIp":        "10.0.0.10",
			"region":           m.region,
			"version":          "2017-09-30",
		}, "", "  ")
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write(doc)
	default:
		if key, ok := strings.CutPrefix(r.URL.Path, "/latest/meta-data/tags/instance/"); ok {
			m.mu.Lock()
			v, found := m.tags[key]
			m.mu.Unlock()
			if found {
				w.Header().Set("Content-Type", "text/plain")
				_, _ = w.Write([]byte(v))
				return http.StatusOK
			}
		}
		return fail(w, http.StatusNotFound)
	}
	return http.StatusOK
}

func fail(w http.ResponseWriter, status int) int {
	http.Error(w, http.StatusText(status), status)
	return status
}
