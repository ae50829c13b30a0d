package vmtest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"
)

// sigv4Algorithm is the only signing algorithm S3 accepts in a header.
const sigv4Algorithm = "AWS4-HMAC-SHA256"

// sigv4Key is one access key the fake S3 knows: the secret to recompute
// signatures with and, for temporary credentials, the session token the
// request must carry.
type sigv4Key struct {
	secret, sessionToken string
}

// sigv4Check says what a request must have been signed for.
type sigv4Check struct {
	keys    map[string]sigv4Key
	region  string
	service string
	now     func() time.Time
	// skew is how far X-Amz-Date may be from now; S3 allows 15 minutes.
	skew time.Duration
}

// sigv4Error is a refused signature, with the S3 error code it maps to.
type sigv4Error struct {
	Code, Reason string
}

func (e *sigv4Error) Error() string { return e.Code + ": " + e.Reason }

func refuse(code, format string, args ...any) error {
	return &sigv4Error{Code: code, Reason: fmt.Sprintf(format, args...)}
}

// verify recomputes the request's Signature Version 4 from the secret of
// the access key it names, the way S3 does for a header-signed request, and
// compares. body is the request's payload (empty for a GET).
func (c sigv4Check) verify(r *http.Request, body []byte) error {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return refuse("AccessDenied", "the request is not signed (no Authorization header)")
	}
	rest, ok := strings.CutPrefix(auth, sigv4Algorithm+" ")
	if !ok {
		return refuse("InvalidRequest", "want an %s Authorization header", sigv4Algorithm)
	}
	fields := map[string]string{}
	for _, part := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return refuse("AuthorizationHeaderMalformed", "malformed Authorization field %q", part)
		}
		fields[k] = v
	}
	credential, signedList, signature := fields["Credential"], fields["SignedHeaders"], fields["Signature"]
	if credential == "" || signedList == "" || signature == "" {
		return refuse("AuthorizationHeaderMalformed", "Credential, SignedHeaders and Signature are all required")
	}

	// Credential=AKID/yyyymmdd/region/service/aws4_request
	scope := strings.Split(credential, "/")
	if len(scope) != 5 || scope[4] != "aws4_request" {
		return refuse("AuthorizationHeaderMalformed", "credential %q is not AKID/date/region/service/aws4_request", credential)
	}
	key, known := c.keys[scope[0]]
	if !known {
		return refuse("InvalidAccessKeyId", "unknown access key %q", scope[0])
	}
	if scope[2] != c.region || scope[3] != c.service {
		return refuse("AuthorizationHeaderMalformed", "signed for %s/%s, want %s/%s", scope[2], scope[3], c.region, c.service)
	}
	amzDate := r.Header.Get("X-Amz-Date")
	t, err := time.Parse("20060102T150405Z", amzDate)
	if err != nil {
		return refuse("AccessDenied", "X-Amz-Date %q is not yyyymmddThhmmssZ", amzDate)
	}
	if scope[1] != amzDate[:8] {
		return refuse("AuthorizationHeaderMalformed", "credential date %s differs from X-Amz-Date %s", scope[1], amzDate)
	}
	if d := c.now().Sub(t); d > c.skew || d < -c.skew {
		return refuse("RequestTimeTooSkewed", "X-Amz-Date %s is %s from the server's time", amzDate, d.Round(time.Second))
	}

	signed := strings.Split(signedList, ";")
	if !slices.IsSorted(signed) {
		return refuse("AuthorizationHeaderMalformed", "SignedHeaders %q are not sorted", signedList)
	}
	need := []string{"host", "x-amz-content-sha256", "x-amz-date"}
	if key.sessionToken != "" {
		need = append(need, "x-amz-security-token")
	}
	for _, h := range need {
		if !slices.Contains(signed, h) {
			return refuse("AccessDenied", "%s is not among the signed headers %q", h, signedList)
		}
	}
	if key.sessionToken != "" && r.Header.Get("X-Amz-Security-Token") != key.sessionToken {
		return refuse("InvalidToken", "the session token does not belong to access key %s", scope[0])
	}
	payload := r.Header.Get("X-Amz-Content-Sha256")
	if payload != "UNSIGNED-PAYLOAD" {
		sum := sha256.Sum256(body)
		if payload != hex.EncodeToString(sum[:]) {
			return refuse("XAmzContentSHA256Mismatch", "x-amz-content-sha256 %q is not the payload's SHA-256", payload)
		}
	}

	canonical := strings.Join([]string{
		r.Method,
		canonicalURI(r.URL.Path),
		canonicalQuery(r.URL.RawQuery),
		canonicalHeaders(r, signed),
		signedList,
		payload,
	}, "\n")
	crSum := sha256.Sum256([]byte(canonical))
	toSign := strings.Join([]string{sigv4Algorithm, amzDate, strings.Join(scope[1:], "/"), hex.EncodeToString(crSum[:])}, "\n")
	k := []byte("AWS4" + key.secret)
	for _, part := range scope[1:] {
		k = hmacSHA256(k, part)
	}
	want := hex.EncodeToString(hmacSHA256(k, toSign))
	if !hmac.Equal([]byte(want), []byte(signature)) {
		return refuse("SignatureDoesNotMatch", "the signature does not match the one computed with the secret of %s", scope[0])
	}
	return nil
}

func hmacSHA256(key []byte, msg string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(msg))
	return h.Sum(nil)
}

// canonicalURI encodes the decoded path once, as S3 expects (other services
// encode twice): every byte but the unreserved ones and '/'.
func canonicalURI(path string) string {
	if path == "" {
		return "/"
	}
	return uriEncode(path, true)
}

// canonicalQuery sorts the parameters by encoded name, then value.
func canonicalQuery(raw string) string {
	if raw == "" {
		return ""
	}
	type kv struct{ k, v string }
	var pairs []kv
	for _, p := range strings.Split(raw, "&") {
		if p == "" {
			continue
		}
		k, v, _ := strings.Cut(p, "=")
		dk, err1 := url.QueryUnescape(k)
		dv, err2 := url.QueryUnescape(v)
		if err1 != nil || err2 != nil {
			dk, dv = k, v
		}
		pairs = append(pairs, kv{uriEncode(dk, false), uriEncode(dv, false)})
	}
	sort.Slice(pairs, func(i, j int) bool {
		if pairs[i].k != pairs[j].k {
			return pairs[i].k < pairs[j].k
		}
		return pairs[i].v < pairs[j].v
	})
	out := make([]string, len(pairs))
	for i, p := range pairs {
		out[i] = p.k + "=" + p.v
	}
	return strings.Join(out, "&")
}

// canonicalHeaders writes name:value lines for the signed headers, values
// trimmed with inner runs of spaces folded, repeated headers joined by ','.
func canonicalHeaders(r *http.Request, signed []string) string {
	var b strings.Builder
	for _, name := range signed {
		var values []string
		if name == "host" {
			// Go moves Host out of the header map.
			values = []string{r.Host}
		} else {
			values = slices.Clone(r.Header.Values(name))
		}
		for i, v := range values {
			values[i] = strings.Join(strings.Fields(v), " ")
		}
		b.WriteString(name + ":" + strings.Join(values, ",") + "\n")
	}
	return b.String()
}

func uriEncode(s string, keepSlash bool) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9',
			c == '-', c == '_', c == '.', c == '~', c == '/' && keepSlash:
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
		}
	}
	return b.String()
}

// errorCode returns the S3 error code for a verification error.
func errorCode(err error) string {
	var se *sigv4Error
	if errors.As(err, &se) {
		return se.Code
	}
	return "InternalError"
}
