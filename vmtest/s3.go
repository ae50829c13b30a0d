package vmtest

import (
	"encoding/xml"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// S3 is a fake of the one S3 operation a Koi uses: a path-style GetObject
// (GET /<bucket>/<key>) signed with Signature Version 4 by temporary
// credentials. Every request's signature is recomputed with the secret of
// the access key it names; a request without one, or with one that does not
// match, or without the session token, gets S3's 403 and nothing else.
type S3 struct {
	srv   *httptest.Server
	check sigv4Check

	mu       sync.Mutex
	objects  map[string][]byte // by "/bucket/key"
	requests []S3Request
}

// S3Request is one request the fake received and how it answered.
type S3Request struct {
	Method, Path string
	Status       int
	// Refused says why a request was refused (the S3 error code and the
	// reason); empty when it was served.
	Refused string
}

// NewS3 starts a fake S3 for region on 127.0.0.1 that accepts the given
// temporary credentials. Close it when done.
func NewS3(region string, creds Credentials) *S3 {
	s := &S3{
		check: sigv4Check{
			keys:    map[string]sigv4Key{creds.AccessKeyID: {secret: creds.SecretAccessKey, sessionToken: creds.Token}},
			region:  region,
			service: "s3",
			now:     time.Now,
			skew:    15 * time.Minute,
		},
		objects: map[string][]byte{},
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// URL is the fake's base URL, http://127.0.0.1:port.
func (s *S3) URL() string { return s.srv.URL }

// Addr is the fake's host:port, for a guest forward.
func (s *S3) Addr() string { return s.srv.Listener.Addr().String() }

// Close stops the server.
func (s *S3) Close() { s.srv.Close() }

// Put stores an object.
func (s *S3) Put(bucket, key string, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.objects["/"+bucket+"/"+key] = data
}

// Requests returns every request received, in order.
func (s *S3) Requests() []S3Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]S3Request(nil), s.requests...)
}

func (s *S3) record(r *http.Request, status int, refused string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, S3Request{Method: r.Method, Path: r.URL.Path, Status: status, Refused: refused})
}

// s3Error is S3's XML error body.
type s3Error struct {
	XMLName   xml.Name `xml:"Error"`
	Code      string   `xml:"Code"`
	Message   string   `xml:"Message"`
	Resource  string   `xml:"Resource"`
	RequestID string   `xml:"RequestId"`
}

func (s *S3) fail(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	s.record(r, status, code+": "+msg)
	body, _ := xml.Marshal(s3Error{Code: code, Message: msg, Resource: r.URL.Path, RequestID: "vmtest"})
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	_, _ = w.Write(append([]byte(xml.Header), body...))
}

func (s *S3) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, "IncompleteBody", err.Error())
		return
	}
	// Authentication comes first, as on S3: an unsigned caller learns
	// nothing, not even whether the object exists.
	if err := s.check.verify(r, body); err != nil {
		s.fail(w, r, http.StatusForbidden, errorCode(err), err.Error())
		return
	}
	if r.Method != http.MethodGet {
		s.fail(w, r, http.StatusMethodNotAllowed, "MethodNotAllowed", "only GET is served")
		return
	}
	if strings.Count(strings.TrimPrefix(r.URL.Path, "/"), "/") < 1 {
		s.fail(w, r, http.StatusBadRequest, "InvalidRequest", "want a path-style /bucket/key")
		return
	}
	s.mu.Lock()
	data, ok := s.objects[r.URL.Path]
	s.mu.Unlock()
	if !ok {
		s.fail(w, r, http.StatusNotFound, "NoSuchKey", "The specified key does not exist.")
		return
	}
	s.record(r, http.StatusOK, "")
	w.Header().Set("Content-Type", "application/octet-stream")
	_, _ = w.Write(data)
}
