// Package bedrocktest is a fake Amazon Bedrock Runtime for tests, in the
// spirit of net/http/httptest: a real HTTP server on 127.0.0.1 that answers
// Converse and ConverseStream with the service's wire format (restJson1
// requests, application/vnd.amazon.eventstream responses encoded with the
// AWS event-stream encoder). Point the real SDK client at URL() through
// BaseEndpoint; nothing in between is mocked, so request serialization,
// SigV4 signing, event decoding and error mapping all run for real.
//
// Each test scripts the answers it needs with Enqueue or Handle and inspects
// what the client sent with Requests.
package bedrocktest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"time"
)

// AnyModel as the model id of Enqueue matches requests for every model that
// has no queue of its own.
const AnyModel = "*"

// Server is a running fake. Its methods are safe for concurrent use.
type Server struct {
	srv     *httptest.Server
	closing chan struct{}
	once    sync.Once

	mu       sync.Mutex
	queues   map[string][]Reply
	handler  func(Request) Reply
	fallback Reply
	hasFall  bool
	requests []Request
	keep     int // KeepRequests; 0 = all
	seq      int
	ctxLimit int // SetContextLimit; 0 = none
	tooLong  int // requests the context limit refused
}

// NewServer starts a fake on a free port of 127.0.0.1. Close it when done.
func NewServer() *Server {
	s := &Server{
		closing: make(chan struct{}),
		queues:  map[string][]Reply{},
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	return s
}

// URL is the base endpoint, e.g. http://127.0.0.1:41234.
func (s *Server) URL() string { return s.srv.URL }

// Close stops the server. Streams stalled in Hang or Delay end first, so
// Close does not wait for them.
func (s *Server) Close() {
	s.once.Do(func() { close(s.closing) })
	s.srv.Close()
}

// Enqueue queues r as the answer to the next request for modelID (FIFO per
// model); AnyModel ("*") serves models without their own queue.
func (s *Server) Enqueue(modelID string, r Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queues[modelID] = append(s.queues[modelID], r)
}

// Handle sets a function that answers requests no queued reply matches.
func (s *Server) Handle(fn func(req Request) Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handler = fn
}

// SetDefault sets the reply used when neither a queue nor the handler
// answers. Without one, such a request gets a 400 ValidationException that
// names the unscripted model, so a forgotten Enqueue fails loudly.
func (s *Server) SetDefault(r Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fallback, s.hasFall = r, true
}

// Requests returns a copy of every request received, in arrival order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Pending returns how many queued replies have not been used yet.
func (s *Server) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, q := range s.queues {
		n += len(q)
	}
	return n
}

// Reset forgets queued replies, the handler, the default and the recorded
// requests.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queues = map[string][]Reply{}
	s.handler = nil
	s.fallback, s.hasFall = nil, false
	s.requests = nil
}

// KeepRequests bounds the recorded requests to the last n (0 keeps all),
// so a long soak does not hold every request body in memory.
func (s *Server) KeepRequests(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keep = n
}

func (s *Server) record(r Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, r)
	if s.keep > 0 && len(s.requests) > s.keep {
		s.requests = append([]Request(nil), s.requests[len(s.requests)-s.keep:]...)
	}
}

// next picks the reply for req: the model's queue, then the AnyModel queue,
// then the handler, then the default.
func (s *Server) next(req Request) (Reply, bool) {
	s.mu.Lock()
	for _, key := range []string{req.ModelID, AnyModel} {
		if q := s.queues[key]; len(q) > 0 {
			s.queues[key] = q[1:]
			s.mu.Unlock()
			return q[0], true
		}
	}
	h, fb, hasFB := s.handler, s.fallback, s.hasFall
	s.mu.Unlock()
	// The handler runs unlocked: it may call back into the server.
	if h != nil {
		return h(req), true
	}
	return fb, hasFB
}

func (s *Server) requestID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	return fmt.Sprintf("bedrocktest-%08d", s.seq)
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Amzn-RequestId", s.requestID())
	req := Request{Header: r.Header.Clone(), Path: r.URL.EscapedPath()}

	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	if err != nil {
		req.Rejected = "reading body: " + err.Error()
		s.record(req)
		writeHTTPError(w, http.StatusBadRequest, "SerializationException", "bedrocktest: could not read the request body")
		return
	}
	req.Body = body

	op, modelID, perr := parsePath(r)
	req.Operation, req.ModelID = op, modelID
	if perr != nil {
		req.Rejected = perr.Error()
		s.record(req)
		writeHTTPError(w, http.StatusNotFound, "UnknownOperationException", "bedrocktest: "+perr.Error())
		return
	}

	// The real service rejects unsigned requests; the fake insists on a
	// SigV4 Authorization header so a passing test proves the SDK's signer
	// ran (it cannot check the signature without the secret key).
	auth := r.Header.Get("Authorization")
	if !strings.HasPrefix(auth, "AWS4-HMAC-SHA256") {
		req.Rejected = "missing SigV4 Authorization header"
		s.record(req)
		writeHTTPError(w, http.StatusForbidden, "AccessDeniedException",
			"bedrocktest: request is not signed with SigV4 (no \"AWS4-HMAC-SHA256\" Authorization header)")
		return
	}
	req.Region, req.SigningService = credentialScope(auth)

	var wb wireBody
	if err := json.Unmarshal(body, &wb); err != nil {
		req.Rejected = "invalid JSON body: " + err.Error()
		s.record(req)
		writeHTTPError(w, http.StatusBadRequest, "SerializationException", "bedrocktest: request body is not valid JSON")
		return
	}
	req.Messages, req.System, req.ToolConfig = wb.Messages, wb.System, wb.ToolConfig
	req.InferenceConfig, req.AdditionalModelRequestFields = wb.InferenceConfig, wb.AdditionalModelRequestFields
	if why := checkFiles(req.Messages); why != "" {
		req.Rejected = why
		s.record(req)
		writeHTTPError(w, http.StatusBadRequest, "ValidationException", why)
		return
	}
	req.InputTokens = EstimateTokens(req)
	if over, limit := s.overLimit(req.InputTokens); over {
		req.Rejected = tooLongReason(req.InputTokens, limit)
		s.record(req)
		writeTooLong(w)
		return
	}
	s.record(req)

	reply, ok := s.next(req)
	if !ok {
		writeHTTPError(w, http.StatusBadRequest, "ValidationException",
			fmt.Sprintf("bedrocktest: no reply scripted for model %q (Enqueue, Handle or SetDefault)", modelID))
		return
	}
	sess := &session{srv: s, w: w, r: r, bodyLen: len(body), inputTokens: req.InputTokens, start: time.Now()}
	if op == "Converse" {
		sess.converse(reply)
		return
	}
	sess.stream(reply)
}

// parsePath splits /model/{modelId}/converse[-stream]. The SDK escapes the
// label (inference profile ARNs contain ':' and '/'), so it is cut from the
// escaped path and only then unescaped.
func parsePath(r *http.Request) (op, modelID string, err error) {
	if r.Method != http.MethodPost {
		return "", "", fmt.Errorf("method %s not allowed", r.Method)
	}
	p := r.URL.EscapedPath()
	rest, ok := strings.CutPrefix(p, "/model/")
	if !ok {
		return "", "", fmt.Errorf("unknown path %q", p)
	}
	i := strings.LastIndex(rest, "/")
	if i <= 0 {
		return "", "", fmt.Errorf("unknown path %q", p)
	}
	switch rest[i+1:] {
	case "converse-stream":
		op = "ConverseStream"
	case "converse":
		op = "Converse"
	default:
		return "", "", fmt.Errorf("unknown operation in path %q", p)
	}
	modelID, err = url.PathUnescape(rest[:i])
	if err != nil {
		return op, "", fmt.Errorf("bad model id in path %q: %w", p, err)
	}
	return op, modelID, nil
}

// credentialScope reads region and service from
// "AWS4-HMAC-SHA256 Credential=AKID/20250101/us-east-1/bedrock/aws4_request, …".
func credentialScope(auth string) (region, service string) {
	_, after, ok := strings.Cut(auth, "Credential=")
	if !ok {
		return "", ""
	}
	cred, _, _ := strings.Cut(after, ",")
	parts := strings.Split(strings.TrimSpace(cred), "/")
	if len(parts) != 5 {
		return "", ""
	}
	return parts[2], parts[3]
}

// writeHTTPError answers as Bedrock does before a stream starts: the error
// type in X-Amzn-ErrorType (with the coral namespace suffix the SDK strips)
// and {"message": …} as the body.
func writeHTTPError(w http.ResponseWriter, status int, errType, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amzn-ErrorType", errType+":http://internal.amazon.com/coral/com.amazon.bedrock/")
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]string{"message": message})
	_, _ = w.Write(b)
}

// wait sleeps for d, or forever when d < 0, and reports false when the
// client went away or the server is closing.
func (s *Server) wait(r *http.Request, d time.Duration) bool {
	var timer <-chan time.Time
	if d >= 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-timer:
		return true
	case <-r.Context().Done():
		return false
	case <-s.closing:
		return false
	}
}

// converse answers the non-streaming route from the same script, for
// health checks that use Converse.
func (ss *session) converse(reply Reply) {
	type block map[string]any
	var (
		content   []block
		text      strings.Builder
		stop      string
		usage     *usageCounts
		toolUsed  bool
		flushText = func() {
			if text.Len() > 0 {
				content = append(content, block{"text": text.String()})
				text.Reset()
			}
		}
	)
	for _, st := range reply {
		switch st.kind {
		case stepDelay:
			if !ss.srv.wait(ss.r, st.delay) {
				return
			}
		case stepHang:
			ss.srv.wait(ss.r, -1)
			return
		case stepHTTPError:
			writeHTTPError(ss.w, st.status, st.errType, st.message)
			return
		case stepException:
			writeHTTPError(ss.w, httpStatusFor(st.errType), upperFirst(st.errType), st.message)
			return
		case stepDisconnect:
			panic(http.ErrAbortHandler)
		case stepText:
			for range st.n {
				text.WriteString(st.text)
			}
		case stepReasoning:
			flushText()
			content = append(content, block{"reasoningContent": block{"reasoningText": block{"text": st.text, "signature": st.signature}}})
		case stepToolUse:
			flushText()
			toolUsed = true
			in := json.RawMessage(st.input)
			if len(bytes.TrimSpace(in)) == 0 {
				in = json.RawMessage("{}")
			}
			content = append(content, block{"toolUse": block{"toolUseId": st.id, "name": st.name, "input": in}})
		case stepStop:
			stop = st.reason
		case stepUsage:
			u := st.usage
			usage = &u
		}
	}
	flushText()
	if stop == "" {
		stop = autoStopReason(toolUsed)
	}
	if usage == nil {
		u := ss.autoUsage(0)
		usage = &u
	}
	resp := map[string]any{
		"output":     map[string]any{"message": map[string]any{"role": "assistant", "content": content}},
		"stopReason": stop,
		"usage":      usageJSON(*usage),
		"metrics":    map[string]any{"latencyMs": time.Since(ss.start).Milliseconds()},
	}
	b, err := json.Marshal(resp)
	if err != nil {
		writeHTTPError(ss.w, 500, "InternalServerException", "bedrocktest: "+err.Error())
		return
	}
	ss.w.Header().Set("Content-Type", "application/json")
	_, _ = ss.w.Write(b)
}

func autoStopReason(toolUsed bool) string {
	if toolUsed {
		return "tool_use"
	}
	return "end_turn"
}

func usageJSON(u usageCounts) map[string]any {
	m := map[string]any{
		"inputTokens":  u.in,
		"outputTokens": u.out,
		"totalTokens":  u.in + u.out + u.cacheRead + u.cacheWrite,
	}
	if u.cacheRead > 0 {
		m["cacheReadInputTokens"] = u.cacheRead
	}
	if u.cacheWrite > 0 {
		m["cacheWriteInputTokens"] = u.cacheWrite
	}
	return m
}

// errClientGone stops a script once a write fails.
var errClientGone = errors.New("bedrocktest: client went away")

// Client returns an HTTP client for SDK clients that talk to this server
// directly (set it as the SDK's HTTPClient). It hides WriteTo on request
// bodies: smithy-go's body wrapper returns io.EOF from WriteTo once the SDK
// has closed it, which net/http's end-of-body check takes for a failed
// write, closing the connection under the event stream. Against a local
// server that race breaks a stream every few dozen; the bedrock package's
// provider fixes it in its own middleware. (config.LoadDefaultConfig
// refuses this client when AWS_CA_BUNDLE is set; pass it to
// bedrockruntime.New directly.)
func (s *Server) Client() *http.Client {
	return &http.Client{Transport: readOnlyBodyTransport{base: s.srv.Client().Transport}}
}

type readOnlyBodyTransport struct{ base http.RoundTripper }

func (t readOnlyBodyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return t.base.RoundTrip(r)
	}
	r2 := new(http.Request)
	*r2 = *r
	r2.Body = readOnlyBody{r.Body}
	return t.base.RoundTrip(r2)
}

type readOnlyBody struct{ rc io.ReadCloser }

func (b readOnlyBody) Read(p []byte) (int, error) { return b.rc.Read(p) }
func (b readOnlyBody) Close() error               { return b.rc.Close() }
