package ec2test

import (
	"crypto/md5"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/xml"
	"hash/crc32"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// S3 here is path-style (/<bucket>/<key>), as a Koi reaches it through a
// BaseEndpoint: GetObject, HeadObject and PutObject. Authentication comes
// first, as on S3: an unsigned caller learns nothing, not even whether the
// object exists.

type object struct {
	data        []byte
	contentType string
	modified    time.Time
	etag        string
}

// Put stores an object, as if uploaded earlier.
func (s *Server) Put(bucket, key string, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.objects["/"+bucket+"/"+key] = newObject(data, "application/octet-stream")
}

// Object returns a stored object's bytes.
func (s *Server) Object(bucket, key string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.objects["/"+bucket+"/"+key]
	return append([]byte(nil), o.data...), ok
}

func newObject(data []byte, contentType string) object {
	sum := md5.Sum(data)
	return object{
		data:        append([]byte(nil), data...),
		contentType: contentType,
		// S3's Last-Modified has second resolution.
		modified: time.Now().UTC().Truncate(time.Second),
		etag:     `"` + hex.EncodeToString(sum[:]) + `"`,
	}
}

// s3ErrorXML is S3's XML error body.
type s3ErrorXML struct {
	XMLName   xml.Name `xml:"Error"`
	Code      string   `xml:"Code"`
	Message   string   `xml:"Message"`
	Resource  string   `xml:"Resource"`
	RequestID string   `xml:"RequestId"`
}

func writeS3Error(w http.ResponseWriter, r *http.Request, status int, code, msg, reqID string) {
	w.Header().Set("X-Amz-Request-Id", reqID)
	if r.Method == http.MethodHead {
		// A HEAD answer has no body; S3 sends the status alone.
		w.WriteHeader(status)
		return
	}
	body, _ := xml.Marshal(s3ErrorXML{Code: code, Message: msg, Resource: r.URL.Path, RequestID: reqID})
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	_, _ = w.Write(append([]byte(xml.Header), body...))
}

func (s *Server) serveS3(w http.ResponseWriter, r *http.Request, body []byte) {
	action := map[string]string{http.MethodGet: "GetObject", http.MethodHead: "HeadObject", http.MethodPut: "PutObject"}[r.Method]
	call := Call{Service: "s3", Action: action, Method: r.Method, Path: r.URL.Path,
		Region: credentialRegion(r.Header.Get("Authorization"))}
	reqID := s.requestID()
	fail := func(status int, code, msg string) {
		call.Status, call.Err = status, code+": "+msg
		if action == "" {
			call.Rejected = call.Err
		}
		s.record(call)
		writeS3Error(w, r, status, code, msg, reqID)
	}
	if action == "" {
		fail(http.StatusMethodNotAllowed, "MethodNotAllowed", "The specified method is not allowed against this resource.")
		return
	}
	bucket, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if bucket == "" || key == "" {
		fail(http.StatusBadRequest, "InvalidRequest", "ec2test: want a path-style /bucket/key")
		return
	}
	if action == "PutObject" {
		if ce := r.Header.Get("Content-Encoding"); strings.Contains(ce, "aws-chunked") {
			fail(http.StatusNotImplemented, "NotImplemented", "ec2test: aws-chunked uploads are not served; send the body whole")
			return
		}
		if m := r.Header.Get("Content-Md5"); m != "" {
			sum := md5.Sum(body)
			if m != base64.StdEncoding.EncodeToString(sum[:]) {
				fail(http.StatusBadRequest, "BadDigest", "The Content-MD5 you specified did not match what we received.")
				return
			}
		}
		if c := r.Header.Get("X-Amz-Checksum-Crc32"); c != "" {
			var b [4]byte
			binary.BigEndian.PutUint32(b[:], crc32.ChecksumIEEE(body))
			if c != base64.StdEncoding.EncodeToString(b[:]) {
				fail(http.StatusBadRequest, "BadDigest", "The CRC32 you specified did not match the calculated checksum.")
				return
			}
		}
		ct := r.Header.Get("Content-Type")
		if ct == "" {
			ct = "binary/octet-stream"
		}
		o := newObject(body, ct)
		s.mu.Lock()
		s.objects[r.URL.Path] = o
		s.mu.Unlock()
		call.Status = http.StatusOK
		s.record(call)
		w.Header().Set("ETag", o.etag)
		w.Header().Set("X-Amz-Request-Id", reqID)
		w.WriteHeader(http.StatusOK)
		return
	}
	s.mu.Lock()
	o, ok := s.objects[r.URL.Path]
	s.mu.Unlock()
	if !ok {
		fail(http.StatusNotFound, "NoSuchKey", "The specified key does not exist.")
		return
	}
	call.Status = http.StatusOK
	s.record(call)
	h := w.Header()
	h.Set("Content-Type", o.contentType)
	h.Set("Content-Length", strconv.Itoa(len(o.data)))
	h.Set("ETag", o.etag)
	h.Set("Last-Modified", o.modified.Format(http.TimeFormat))
	h.Set("X-Amz-Request-Id", reqID)
	w.WriteHeader(http.StatusOK)
	if action == "GetObject" {
		_, _ = w.Write(o.data)
	}
}
