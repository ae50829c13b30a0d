package ec2test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"
)

// sigv4Algorithm is the only signing algorithm the stand-in accepts.
const sigv4Algorithm = "AWS4-HMAC-SHA256"

// Key is one access key the stand-in knows: the secret it recomputes
// signatures with and, for temporary credentials, the session token a
// request must carry. A key without a session token refuses requests that
// carry one, as AWS refuses a long-term key with a token.
type Key struct {
	AccessKeyID, SecretAccessKey, SessionToken string
}

// DefaultKey is the key NewServer accepts. It matches the credentials the
// gateway's test harness hands the SDK.
var DefaultKey = Key{AccessKeyID: "AKIDTEST", SecretAccessKey: "secret", SessionToken: "session"}

// sigKind classifies a refused signature; each protocol maps it to its own
// error code (EC2's AuthFailure is S3's AccessDenied).
type sigKind int

const (
	sigMissing     sigKind = iota // no Authorization header at all
	sigMalformed                  // not SigV4, or fields missing or inconsistent
	sigUnknownKey                 // an access key the server does not know
	sigBadToken                   // the session token is missing or wrong
	sigExpired                    // X-Amz-Date too far from now
	sigMismatch                   // recomputed signature differs
	sigWrongScope                 // signed for another region or service
	sigPayloadHash                // x-amz-content-sha256 is not the body's hash
	sigUnsigned                   // a header that must be signed is not
)

// sigError is a refused signature.
type sigError struct {
	Kind   sigKind
	Reason string
}

func (e *sigError) Error() string { return e.Reason }

func refuse(kind sigKind, format string, args ...any) *sigError {
	return &sigError{Kind: kind, Reason: fmt.Sprintf(format, args...)}
}

// verifier checks requests against the keys a server was given.
type verifier struct {
	keys map[string]Key
	// region, when set, is the only region a request may be signed for.
	region string
	now    func() time.Time
	// skew is how far X-Amz-Date may be from now; AWS allows 15 minutes.
	skew time.Duration
}

// scopeOf reads the credential scope of a SigV4 Authorization header
// without verifying anything; ok is false when there is none.
func scopeOf(auth string) (akid, date, region, service string, ok bool) {
	rest, found := strings.CutPrefix(auth, sigv4Algorithm+" ")
	if !found {
		return "", "", "", "", false
	}
	_, cred, found := strings.Cut(rest, "Credential=")
	if !found {
		return "", "", "", "", false
	}
	cred, _, _ = strings.Cut(cred, ",")
	parts := strings.Split(strings.TrimSpace(cred), "/")
	if len(parts) != 5 {
		return "", "", "", "", false
	}
	return parts[0], parts[1], parts[2], parts[3], true
}

// verify recomputes the request's Signature Version 4 with the secret of
// the access key it names, the way AWS does for a header-signed request,
// and compares. service is the service the request reached; body is the
// payload the server read.
func (c verifier) verify(r *http.Request, service string, body []byte) *sigError {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return refuse(sigMissing, "the request is not signed (no Authorization header)")
	}
	rest, ok := strings.CutPrefix(auth, sigv4Algorithm+" ")
	if !ok {
		return refuse(sigMalformed, "want an %s Authorization header", sigv4Algorithm)
	}
	fields := map[string]string{}
	for _, part := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return refuse(sigMalformed, "malformed Authorization field %q", part)
		}
		fields[k] = v
	}
	credential, signedList, signature := fields["Credential"], fields["SignedHeaders"], fields["Signature"]
	if credential == "" || signedList == "" || signature == "" {
		return refuse(sigMalformed, "Credential, SignedHeaders and Signature are all required")
	}

	// Credential=AKID/yyyymmdd/region/service/aws4_request
	scope := strings.Split(credential, "/")
	if len(scope) != 5 || scope[4] != "aws4_request" {
		return refuse(sigMalformed, "credential %q is not AKID/date/region/service/aws4_request", credential)
	}
	key, known := c.keys[scope[0]]
	if !known {
		return refuse(sigUnknownKey, "unknown access key %q", scope[0])
	}
	if scope[3] != service {
		return refuse(sigWrongScope, "signed for service %s, but this is %s", scope[3], service)
	}
	if c.region != "" && scope[2] != c.region {
		return refuse(sigWrongScope, "signed for region %s, want %s", scope[2], c.region)
	}
	amzDate := r.Header.Get("X-Amz-Date")
	t, err := time.Parse("20060102T150405Z", amzDate)
	if err != nil {
		return refuse(sigMalformed, "X-Amz-Date %q is not yyyymmddThhmmssZ", amzDate)
	}
	if scope[1] != amzDate[:8] {
		return refuse(sigMalformed, "credential date %s differs from X-Amz-Date %s", scope[1], amzDate)
	}
	if d := c.now().Sub(t); d > c.skew || d < -c.skew {
		return refuse(sigExpired, "X-Amz-Date %s is %s from the server's time", amzDate, d.Round(time.Second))
	}

	signed := strings.Split(signedList, ";")
	if !slices.IsSorted(signed) {
		return refuse(sigMalformed, "SignedHeaders %q are not sorted", signedList)
	}
	need := []string{"host", "x-amz-date"}
	if service == "s3" {
		need = append(need, "x-amz-content-sha256")
	}
	if key.SessionToken != "" {
		need = append(need, "x-amz-security-token")
	}
	for _, h := range need {
		if !slices.Contains(signed, h) {
			return refuse(sigUnsigned, "%s is not among the signed headers %q", h, signedList)
		}
	}
	if got := r.Header.Get("X-Amz-Security-Token"); got != key.SessionToken {
		if key.SessionToken == "" {
			return refuse(sigBadToken, "access key %s takes no session token", scope[0])
		}
		return refuse(sigBadToken, "the session token does not belong to access key %s", scope[0])
	}
	sum := sha256.Sum256(body)
	bodyHash := hex.EncodeToString(sum[:])
	payload := bodyHash
	if h := r.Header.Get("X-Amz-Content-Sha256"); h != "" {
		payload = h
		if h != "UNSIGNED-PAYLOAD" && h != bodyHash {
			return refuse(sigPayloadHash, "x-amz-content-sha256 %q is not the payload's SHA-256", h)
		}
	}

	canonical := strings.Join([]string{
		r.Method,
		canonicalURI(r.URL.Path, service),
		canonicalQuery(r.URL.RawQuery),
		canonicalHeaders(r, signed),
		signedList,
		payload,
	}, "\n")
	crSum := sha256.Sum256([]byte(canonical))
	toSign := strings.Join([]string{sigv4Algorithm, amzDate, strings.Join(scope[1:], "/"), hex.EncodeToString(crSum[:])}, "\n")
	k := []byte("AWS4" + key.SecretAccessKey)
	for _, part := range scope[1:] {
		k = hmacSHA256(k, part)
	}
	want := hex.EncodeToString(hmacSHA256(k, toSign))
	if !hmac.Equal([]byte(want), []byte(signature)) {
		return refuse(sigMismatch, "the signature does not match the one computed with the secret of %s", scope[0])
	}
	return nil
}

func hmacSHA256(key []byte, msg string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(msg))
	return h.Sum(nil)
}

// canonicalURI encodes the decoded path once for S3 and twice for every
// other service, as SigV4 prescribes.
func canonicalURI(path, service string) string {
	if path == "" {
		return "/"
	}
	enc := uriEncode(path, true)
	if service != "s3" {
		enc = uriEncode(enc, true)
	}
	return enc
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
		switch name {
		case "host":
			// Go moves Host out of the header map.
			values = []string{r.Host}
		case "content-length":
			values = r.Header.Values(name)
			if len(values) == 0 && r.ContentLength >= 0 {
				values = []string{fmt.Sprint(r.ContentLength)}
			}
			values = slices.Clone(values)
		default:
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
