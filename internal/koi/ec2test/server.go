// Package ec2test is the project's one local stand-in for AWS, in the
// spirit of net/http/httptest: a real HTTP server on 127.0.0.1 that speaks
// each API's real wire protocol, so the real SDK clients pointed at URL()
// through BaseEndpoint run their serialization, SigV4 signing, decoding and
// error mapping for real, which an interface mock of the SDK would skip.
//
// Every request's Signature Version 4 is recomputed with the secret of the
// access key it names (Options.Keys; NewServer knows DefaultKey) and
// compared; an unsigned or wrongly signed request gets that API's
// authentication error and changes nothing. The service a request is for
// comes from its credential scope (ec2, scheduler, s3), so one server
// serves all three on one address.
//
// EC2 (Query protocol: form-encoded POST requests with Action and Version,
// XML answers in the EC2 namespace, errors in the <Response><Errors>
// envelope) knows the few actions a Koi's lifecycle needs:
// DescribeInstances, DescribeInstanceStatus, StartInstances, StopInstances
// and GetConsoleOutput. Instances move through EC2's states like the real
// service: StartInstances leaves one pending and StopInstances stopping;
// the move to running or stopped happens on a later DescribeInstances (see
// SetAutoAdvance) or when a test calls Advance.
//
// S3 (path-style REST: /bucket/key) serves GetObject, HeadObject and
// PutObject; EventBridge Scheduler (rest-json) is in scheduler.go.
//
// The package also has a fake instance metadata service (NewIMDS).
package ec2test

import (
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// APIVersion is the only EC2 API version the SDK speaks, and so the only
// one the fake accepts.
const APIVersion = "2016-11-15"

// Namespace is the XML namespace of every EC2 response.
const Namespace = "http://ec2.amazonaws.com/doc/" + APIVersion + "/"

// EC2 instance states, with the codes the real service sends alongside.
const (
	Pending      = "pending"
	Running      = "running"
	ShuttingDown = "shutting-down"
	Terminated   = "terminated"
	Stopping     = "stopping"
	Stopped      = "stopped"
)

var stateCodes = map[string]int{
	Pending: 0, Running: 16, ShuttingDown: 32, Terminated: 48, Stopping: 64, Stopped: 80,
}

// Status check values of DescribeInstanceStatus.
const (
	CheckOK            = "ok"
	CheckInitializing  = "initializing"
	CheckImpaired      = "impaired"
	CheckNotApplicable = "not-applicable"
)

// Instance is what a test sets up with AddInstance.
type Instance struct {
	ID string // i- and 8 or 17 hex digits, as EC2 requires
	// State is one of the state constants; empty means Stopped.
	State     string
	PublicIP  string
	PublicDNS string
	Tags      map[string]string
	// Console is the console output GetConsoleOutput returns (the fake
	// base64-encodes it, as EC2 does).
	Console string
	// NoLatest makes the instance behave like a non-Nitro type, which
	// refuses GetConsoleOutput with Latest=true (UnsupportedOperation).
	NoLatest bool
}

// Call is one request the server received.
type Call struct {
	// Service is the signing name of the API: ec2, scheduler, s3 or logs.
	Service string
	// Action is the operation: an EC2 Action, a Scheduler operation
	// (CreateSchedule, ...) or an S3 one (GetObject, PutObject, HeadObject).
	Action string
	// Method and Path are the HTTP request line (REST APIs).
	Method, Path string
	// Status is the HTTP status answered, for S3 and Scheduler calls.
	Status      int
	InstanceIDs []string
	// Region is the region of the SigV4 credential scope.
	Region string
	// Params is the whole decoded form, for checks on other parameters.
	Params url.Values
	// Rejected says why the request was refused before the action ran
	// (unsigned, wrong version, unknown action); empty when it was served.
	Rejected string
	// Err is the error a served S3 or Scheduler action answered with (a
	// missing key or schedule, a validation error, an injected error).
	Err string
}

// Options configure New. The zero value is a server that knows DefaultKey
// and accepts any region.
type Options struct {
	// Keys are the access keys requests may be signed with; empty means
	// just DefaultKey.
	Keys []Key
	// Region, when set, is the only region requests may be signed for.
	Region string
	// Account is the account ID in the ARNs the server makes; default
	// 123456789012.
	Account string
	// Now is the clock signatures are checked against (time.Now); the
	// scheduler's own clock is separate (see FireDue).
	Now func() time.Time
	// FireOnTime makes the scheduler fire one-time schedules by itself
	// when their time comes on the real clock; without it only FireDue
	// fires them.
	FireOnTime bool
}

// Server is a running fake. Its methods are safe for concurrent use.
type Server struct {
	srv *httptest.Server
	o   Options
	sig verifier

	mu          sync.Mutex
	objects     map[string]object // S3, by "/bucket/key"
	schedules   map[string]*schedule
	logStreams  map[string]map[string][]LogEvent // CloudWatch Logs: group → stream → events
	logPuts     int
	roles       map[string]bool // scheduler execution roles allowed to start instances
	fired       []Firing
	fireTimer   *time.Timer
	closed      bool
	instances   map[string]*instance
	calls       []Call
	errs        map[string]apiError
	autoAdvance int
	seq         int
}

type instance struct {
	Instance
	// seen counts the DescribeInstances answers that showed the current
	// transitional state.
	seen int
	// checksInit: the status checks still report initializing (set when
	// the instance reaches running); checksSeen counts the
	// DescribeInstanceStatus answers that showed it.
	checksInit bool
	checksSeen int
	// systemCheck/instanceCheck override the checks while running.
	systemCheck, instanceCheck string
}

type apiError struct {
	status        int
	code, message string
}

// NewServer starts a stand-in with the default Options on a free port of
// 127.0.0.1. Close it when done.
func NewServer() *Server { return New(Options{}) }

// New starts a stand-in on a free port of 127.0.0.1. Close it when done.
func New(o Options) *Server {
	if len(o.Keys) == 0 {
		o.Keys = []Key{DefaultKey}
	}
	if o.Account == "" {
		o.Account = "123456789012"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	keys := make(map[string]Key, len(o.Keys))
	for _, k := range o.Keys {
		keys[k.AccessKeyID] = k
	}
	s := &Server{
		o:           o,
		sig:         verifier{keys: keys, region: o.Region, now: o.Now, skew: 15 * time.Minute},
		instances:   map[string]*instance{},
		errs:        map[string]apiError{},
		autoAdvance: 1,
		objects:     map[string]object{},
		schedules:   map[string]*schedule{},
		logStreams:  map[string]map[string][]LogEvent{},
		roles:       map[string]bool{},
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	return s
}

// URL is the base endpoint, e.g. http://127.0.0.1:41234.
func (s *Server) URL() string { return s.srv.URL }

// Addr is the server's host:port, e.g. for a guest forward.
func (s *Server) Addr() string { return s.srv.Listener.Addr().String() }

// Credentials are DefaultKey's, as an SDK credentials provider; they are
// accepted only by a server whose Options.Keys are left empty.
func (s *Server) Credentials() aws.CredentialsProvider {
	return credentials.NewStaticCredentialsProvider(DefaultKey.AccessKeyID, DefaultKey.SecretAccessKey, DefaultKey.SessionToken)
}

// Close stops the server.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	if s.fireTimer != nil {
		s.fireTimer.Stop()
	}
	s.mu.Unlock()
	s.srv.Close()
}

var idPattern = regexp.MustCompile(`^i-([0-9a-f]{8}|[0-9a-f]{17})$`)

// AddInstance adds (or replaces) an instance. It panics on an ID EC2 would
// call malformed or an unknown state: that is a mistake in the test.
func (s *Server) AddInstance(in Instance) {
	if !idPattern.MatchString(in.ID) {
		panic(fmt.Sprintf("ec2test: instance ID %q is not i- and 8 or 17 hex digits", in.ID))
	}
	if in.State == "" {
		in.State = Stopped
	}
	if _, ok := stateCodes[in.State]; !ok {
		panic(fmt.Sprintf("ec2test: unknown instance state %q", in.State))
	}
	tags := make(map[string]string, len(in.Tags))
	for k, v := range in.Tags {
		tags[k] = v
	}
	in.Tags = tags
	s.mu.Lock()
	defer s.mu.Unlock()
	s.instances[in.ID] = &instance{Instance: in}
}

// SetConsole replaces the console output of an instance.
func (s *Server) SetConsole(id, text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.must(id).Console = text
}

// State reports the instance's current state without counting as a
// DescribeInstances call.
func (s *Server) State(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.must(id).State
}

// SetChecks fixes the system and instance status checks a running instance
// reports (CheckOK, CheckInitializing, CheckImpaired). Empty values go back
// to the default: initializing for a while after reaching running, then ok.
func (s *Server) SetChecks(id, system, inst string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	in := s.must(id)
	in.systemCheck, in.instanceCheck = system, inst
}

// Advance completes a transition at once: pending becomes running,
// stopping becomes stopped, shutting-down becomes terminated; on a running
// instance whose checks are still initializing, they become ok. It returns
// the new state.
func (s *Server) Advance(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	in := s.must(id)
	if !in.advance() && in.State == Running {
		in.checksInit = false
	}
	return in.State
}

// SetAutoAdvance sets how many DescribeInstances answers show a
// transitional state (pending, stopping, shutting-down) before the instance
// moves on to the final one; the same count applies to status checks
// reported as initializing by DescribeInstanceStatus. The default is 1:
// the first look after StartInstances sees pending, the next sees running.
// n <= 0 turns this off, so an instance stays in transition until Advance.
func (s *Server) SetAutoAdvance(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.autoAdvance = n
}

// SetError makes every later call of action (an EC2 action or a Scheduler
// operation) fail with this error code and message (HTTP 403 for
// UnauthorizedOperation, AuthFailure and AccessDeniedException, 503 for
// Unavailable and RequestLimitExceeded, 429 for ThrottlingException, 500
// for InternalServerException, 400 otherwise). An empty code
// clears it.
func (s *Server) SetError(action, code, message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if code == "" {
		delete(s.errs, action)
		return
	}
	status := http.StatusBadRequest
	switch code {
	case "UnauthorizedOperation", "AuthFailure":
		status = http.StatusForbidden
	case "Unavailable", "RequestLimitExceeded":
		status = http.StatusServiceUnavailable
	case "AccessDeniedException":
		status = http.StatusForbidden
	case "ThrottlingException":
		status = http.StatusTooManyRequests
	case "InternalServerException":
		status = http.StatusInternalServerError
	}
	s.errs[action] = apiError{status: status, code: code, message: message}
}

// Calls returns a copy of every request received, in arrival order.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Call, len(s.calls))
	for i, c := range s.calls {
		c.InstanceIDs = append([]string(nil), c.InstanceIDs...)
		c.Params = cloneValues(c.Params)
		out[i] = c
	}
	return out
}

// CallsOf returns the served calls of one action, in order.
func (s *Server) CallsOf(action string) []Call {
	var out []Call
	for _, c := range s.Calls() {
		if c.Action == action && c.Rejected == "" {
			out = append(out, c)
		}
	}
	return out
}

func (s *Server) must(id string) *instance {
	in, ok := s.instances[id]
	if !ok {
		panic(fmt.Sprintf("ec2test: no instance %q (add it with AddInstance)", id))
	}
	return in
}

// advance moves a transitional state to its final one and reports whether
// there was one to move.
func (in *instance) advance() bool {
	switch in.State {
	case Pending:
		in.State = Running
		in.checksInit, in.checksSeen = true, 0
	case Stopping:
		in.State = Stopped
	case ShuttingDown:
		in.State = Terminated
	default:
		return false
	}
	in.seen = 0
	return true
}

func (in *instance) transitional() bool {
	return in.State == Pending || in.State == Stopping || in.State == ShuttingDown
}

// setState starts a transition: the new state has not been seen yet.
func (in *instance) setState(state string) {
	in.State, in.seen = state, 0
}

func (s *Server) requestID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	return fmt.Sprintf("ec2test-%08d", s.seq)
}

func (s *Server) record(c Call) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, c)
}

// serveHTTP finds the API a request is for, checks its signature and hands
// it on. The service comes from the credential scope; an unsigned request
// is told off in the protocol it looks like it speaks.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err == nil && len(body) > maxBody {
		err = fmt.Errorf("the body is over %d bytes", maxBody)
	}
	_, _, _, service, signed := scopeOf(r.Header.Get("Authorization"))
	if !signed || (service != "ec2" && service != "scheduler" && service != "s3" && service != "logs") {
		switch {
		case strings.HasPrefix(r.Header.Get("X-Amz-Target"), logsTargetPrefix):
			service = "logs"
		case r.Method == http.MethodPost && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded"):
			service = "ec2"
		case strings.HasPrefix(r.URL.Path, "/schedules"):
			service = "scheduler"
		default:
			service = "s3"
		}
	}
	if err != nil {
		s.refuseRequest(w, r, service, http.StatusBadRequest, "reading the request body: "+err.Error())
		return
	}
	if serr := s.sig.verify(r, service, body); serr != nil {
		s.refuseSignature(w, r, service, serr)
		return
	}
	switch service {
	case "ec2":
		s.serveEC2(w, r, body)
	case "scheduler":
		s.serveScheduler(w, r, body)
	case "logs":
		s.serveLogs(w, r, body)
	default:
		s.serveS3(w, r, body)
	}
}

// maxBody bounds a request body; a Koi's biggest upload (its gateway
// binary) is well under it.
const maxBody = 256 << 20

// refuseSignature answers a request whose signature failed with the error
// its API gives for that failure.
func (s *Server) refuseSignature(w http.ResponseWriter, r *http.Request, service string, e *sigError) {
	type answer struct {
		status int
		code   string
	}
	codes := map[string]map[sigKind]answer{
		"ec2": {
			sigMissing:     {401, "AuthFailure"},
			sigMalformed:   {400, "IncompleteSignature"},
			sigUnsigned:    {400, "IncompleteSignature"},
			sigUnknownKey:  {401, "AuthFailure"},
			sigBadToken:    {401, "AuthFailure"},
			sigExpired:     {400, "RequestExpired"},
			sigMismatch:    {403, "SignatureDoesNotMatch"},
			sigWrongScope:  {403, "SignatureDoesNotMatch"},
			sigPayloadHash: {403, "SignatureDoesNotMatch"},
		},
		"scheduler": {
			sigMissing:     {403, "MissingAuthenticationTokenException"},
			sigMalformed:   {400, "IncompleteSignatureException"},
			sigUnsigned:    {400, "IncompleteSignatureException"},
			sigUnknownKey:  {403, "UnrecognizedClientException"},
			sigBadToken:    {403, "UnrecognizedClientException"},
			sigExpired:     {403, "InvalidSignatureException"},
			sigMismatch:    {403, "InvalidSignatureException"},
			sigWrongScope:  {403, "InvalidSignatureException"},
			sigPayloadHash: {403, "InvalidSignatureException"},
		},
		"logs": {
			sigMissing:     {400, "MissingAuthenticationTokenException"},
			sigMalformed:   {400, "IncompleteSignatureException"},
			sigUnsigned:    {400, "IncompleteSignatureException"},
			sigUnknownKey:  {400, "UnrecognizedClientException"},
			sigBadToken:    {400, "UnrecognizedClientException"},
			sigExpired:     {400, "InvalidSignatureException"},
			sigMismatch:    {400, "InvalidSignatureException"},
			sigWrongScope:  {400, "InvalidSignatureException"},
			sigPayloadHash: {400, "InvalidSignatureException"},
		},
		"s3": {
			sigMissing:     {403, "AccessDenied"},
			sigMalformed:   {403, "AuthorizationHeaderMalformed"},
			sigUnsigned:    {403, "AccessDenied"},
			sigUnknownKey:  {403, "InvalidAccessKeyId"},
			sigBadToken:    {403, "InvalidToken"},
			sigExpired:     {403, "RequestTimeTooSkewed"},
			sigMismatch:    {403, "SignatureDoesNotMatch"},
			sigWrongScope:  {403, "AuthorizationHeaderMalformed"},
			sigPayloadHash: {400, "XAmzContentSHA256Mismatch"},
		},
	}
	a := codes[service][e.Kind]
	s.fail(w, r, service, a.status, a.code, "ec2test: "+e.Reason)
}

// refuseRequest answers a request that could not even be read.
func (s *Server) refuseRequest(w http.ResponseWriter, r *http.Request, service string, status int, msg string) {
	code := map[string]string{"ec2": "InvalidParameterValue", "scheduler": "ValidationException", "s3": "IncompleteBody",
		"logs": "SerializationException"}[service]
	s.fail(w, r, service, status, code, "ec2test: "+msg)
}

// fail records a refused request and writes the error in its API's
// format.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, service string, status int, code, msg string) {
	reqID := s.requestID()
	s.record(Call{Service: service, Method: r.Method, Path: r.URL.Path, Status: status, Rejected: code + ": " + msg,
		Region: credentialRegion(r.Header.Get("Authorization"))})
	switch service {
	case "ec2":
		writeError(w, status, code, msg, reqID)
	case "scheduler":
		writeJSONError(w, status, code, msg, reqID)
	case "logs":
		writeLogsError(w, status, code, msg, reqID)
	default:
		writeS3Error(w, r, status, code, msg, reqID)
	}
}

func (s *Server) serveEC2(w http.ResponseWriter, r *http.Request, body []byte) {
	reqID := s.requestID()
	call := Call{Service: "ec2", Method: r.Method, Path: r.URL.Path}
	reject := func(status int, code, msg string) {
		call.Rejected = code + ": " + msg
		call.Status = status
		s.record(call)
		writeError(w, status, code, msg, reqID)
	}
	if r.Method != http.MethodPost {
		reject(http.StatusBadRequest, "InvalidAction", "ec2test: the EC2 Query protocol uses POST, got "+r.Method)
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		reject(http.StatusBadRequest, "InvalidParameterValue", "ec2test: the body is not form-encoded: "+err.Error())
		return
	}
	call.Params, call.Action = form, form.Get("Action")
	call.InstanceIDs = instanceIDs(form)
	call.Region = credentialRegion(r.Header.Get("Authorization"))
	if v := form.Get("Version"); v != APIVersion {
		reject(http.StatusBadRequest, "InvalidParameterValue", fmt.Sprintf("ec2test: Version %q, want %q", v, APIVersion))
		return
	}
	handler, ok := map[string]func(Call) (any, *apiError){
		"DescribeInstances":      s.describeInstances,
		"DescribeInstanceStatus": s.describeInstanceStatus,
		"StartInstances":         s.startInstances,
		"StopInstances":          s.stopInstances,
		"GetConsoleOutput":       s.getConsoleOutput,
	}[call.Action]
	if !ok {
		reject(http.StatusBadRequest, "InvalidAction", fmt.Sprintf("The action %s is not valid for this web service.", call.Action))
		return
	}
	s.record(call)

	s.mu.Lock()
	injected, hasErr := s.errs[call.Action]
	s.mu.Unlock()
	if hasErr {
		writeError(w, injected.status, injected.code, injected.message, reqID)
		return
	}
	if form.Get("DryRun") == "true" {
		writeError(w, http.StatusPreconditionFailed, "DryRunOperation", "Request would have succeeded, but DryRun flag is set.", reqID)
		return
	}
	resp, aerr := handler(call)
	if aerr != nil {
		writeError(w, aerr.status, aerr.code, aerr.message, reqID)
		return
	}
	out, err := xml.Marshal(withRequestID(resp, reqID))
	if err != nil {
		writeError(w, http.StatusInternalServerError, "InternalError", "ec2test: encoding the response: "+err.Error(), reqID)
		return
	}
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, xml.Header)
	_, _ = w.Write(out)
}

// instanceIDs reads the InstanceId.N list, or the single InstanceId that
// GetConsoleOutput sends.
func instanceIDs(form url.Values) []string {
	if id := form.Get("InstanceId"); id != "" {
		return []string{id}
	}
	type indexed struct {
		n  int
		id string
	}
	var list []indexed
	for k, v := range form {
		rest, ok := strings.CutPrefix(k, "InstanceId.")
		if !ok || len(v) == 0 {
			continue
		}
		n, err := strconv.Atoi(rest)
		if err != nil {
			continue
		}
		list = append(list, indexed{n, v[0]})
	}
	sort.Slice(list, func(i, j int) bool { return list[i].n < list[j].n })
	ids := make([]string, len(list))
	for i, e := range list {
		ids[i] = e.id
	}
	return ids
}

// credentialRegion takes the region out of "Credential=AKID/date/region/
// service/aws4_request".
func credentialRegion(auth string) string {
	_, rest, ok := strings.Cut(auth, "Credential=")
	if !ok {
		return ""
	}
	scope, _, _ := strings.Cut(rest, ",")
	parts := strings.Split(scope, "/")
	if len(parts) < 5 {
		return ""
	}
	return parts[2]
}

// lookup resolves ids the way EC2 does: a malformed one fails the whole
// call, then every missing one is named in a single NotFound.
func (s *Server) lookup(ids []string) ([]*instance, *apiError) {
	for _, id := range ids {
		if !idPattern.MatchString(id) {
			return nil, &apiError{http.StatusBadRequest, "InvalidInstanceID.Malformed",
				fmt.Sprintf("Invalid id: %q (expecting \"i-...\")", id)}
		}
	}
	var found []*instance
	var missing []string
	for _, id := range ids {
		if in, ok := s.instances[id]; ok {
			found = append(found, in)
		} else {
			missing = append(missing, id)
		}
	}
	switch len(missing) {
	case 0:
	case 1:
		return nil, &apiError{http.StatusBadRequest, "InvalidInstanceID.NotFound",
			fmt.Sprintf("The instance ID '%s' does not exist", missing[0])}
	default:
		return nil, &apiError{http.StatusBadRequest, "InvalidInstanceID.NotFound",
			fmt.Sprintf("The instance IDs '%s' do not exist", strings.Join(missing, ", "))}
	}
	if len(ids) == 0 {
		for _, in := range s.instances {
			found = append(found, in)
		}
		sort.Slice(found, func(i, j int) bool { return found[i].ID < found[j].ID })
	}
	return found, nil
}

func (s *Server) describeInstances(c Call) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	found, aerr := s.lookup(c.InstanceIDs)
	if aerr != nil {
		return nil, aerr
	}
	resp := &describeInstancesResponse{}
	for _, in := range found {
		if in.transitional() && s.autoAdvance > 0 {
			if in.seen >= s.autoAdvance {
				in.advance()
			} else {
				in.seen++
			}
		}
		item := instanceXML{
			InstanceID: in.ID,
			State:      stateXML(in.State),
			Tags:       tagsXML(in.Tags),
		}
		// Like EC2, a public address exists only while the instance is
		// (about to be) running; a stopped one gets a new address on start.
		if in.State == Pending || in.State == Running {
			item.IPAddress, item.DNSName = in.PublicIP, in.PublicDNS
		}
		resp.Reservations = append(resp.Reservations, reservationXML{
			ReservationID: "r-" + strings.TrimPrefix(in.ID, "i-"),
			OwnerID:       "123456789012",
			Instances:     []instanceXML{item},
		})
	}
	return resp, nil
}

func (s *Server) describeInstanceStatus(c Call) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	found, aerr := s.lookup(c.InstanceIDs)
	if aerr != nil {
		return nil, aerr
	}
	all := c.Params.Get("IncludeAllInstances") == "true"
	resp := &describeInstanceStatusResponse{}
	for _, in := range found {
		// Without IncludeAllInstances, EC2 lists running instances only.
		if in.State != Running && !all {
			continue
		}
		system, inst := CheckNotApplicable, CheckNotApplicable
		if in.State == Running {
			system, inst = CheckOK, CheckOK
			if in.checksInit {
				if s.autoAdvance > 0 && in.checksSeen >= s.autoAdvance {
					in.checksInit = false
				} else {
					in.checksSeen++
					system, inst = CheckInitializing, CheckInitializing
				}
			}
			if in.systemCheck != "" {
				system = in.systemCheck
			}
			if in.instanceCheck != "" {
				inst = in.instanceCheck
			}
		}
		resp.Statuses = append(resp.Statuses, instanceStatusXML{
			InstanceID:     in.ID,
			State:          stateXML(in.State),
			SystemStatus:   summaryXML(system),
			InstanceStatus: summaryXML(inst),
		})
	}
	return resp, nil
}

func (s *Server) startInstances(c Call) (any, *apiError) {
	return s.change(c, "StartInstancesResponse", func(in *instance) *apiError {
		switch in.State {
		case Stopped:
			in.setState(Pending)
		case Pending, Running:
		default:
			return &apiError{http.StatusBadRequest, "IncorrectInstanceState",
				fmt.Sprintf("The instance '%s' is not in a state from which it can be started.", in.ID)}
		}
		return nil
	})
}

func (s *Server) stopInstances(c Call) (any, *apiError) {
	return s.change(c, "StopInstancesResponse", func(in *instance) *apiError {
		switch in.State {
		case Pending, Running:
			in.setState(Stopping)
		case Stopping, Stopped:
		default:
			return &apiError{http.StatusBadRequest, "IncorrectInstanceState",
				fmt.Sprintf("The instance '%s' is not in a state from which it can be stopped.", in.ID)}
		}
		return nil
	})
}

// change applies a state change to every listed instance, or to none when
// one of them refuses it (EC2 does not half-apply a call).
func (s *Server) change(c Call, name string, fn func(*instance) *apiError) (any, *apiError) {
	if len(c.InstanceIDs) == 0 {
		return nil, &apiError{http.StatusBadRequest, "MissingParameter",
			"The request must contain the parameter InstanceId"}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	found, aerr := s.lookup(c.InstanceIDs)
	if aerr != nil {
		return nil, aerr
	}
	saved := make([]instance, len(found))
	for i, in := range found {
		saved[i] = *in
	}
	resp := &stateChangeResponse{XMLName: xml.Name{Space: Namespace, Local: name}}
	for i, in := range found {
		prev := in.State
		if aerr := fn(in); aerr != nil {
			for j := range found[:i] {
				*found[j] = saved[j]
			}
			return nil, aerr
		}
		resp.Changes = append(resp.Changes, stateChangeXML{
			InstanceID: in.ID, Current: stateXML(in.State), Previous: stateXML(prev),
		})
	}
	return resp, nil
}

func (s *Server) getConsoleOutput(c Call) (any, *apiError) {
	if len(c.InstanceIDs) != 1 {
		return nil, &apiError{http.StatusBadRequest, "MissingParameter",
			"The request must contain the parameter InstanceId"}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	found, aerr := s.lookup(c.InstanceIDs)
	if aerr != nil {
		return nil, aerr
	}
	in := found[0]
	if in.NoLatest && c.Params.Get("Latest") == "true" {
		return nil, &apiError{http.StatusBadRequest, "UnsupportedOperation",
			"The instance type does not support retrieving the latest console output."}
	}
	resp := &consoleOutputResponse{
		InstanceID: in.ID,
		Timestamp:  time.Now().UTC().Format("2006-01-02T15:04:05.000Z"),
	}
	// EC2 leaves the element out while there is no output yet.
	if in.Console != "" {
		resp.Output = base64.StdEncoding.EncodeToString([]byte(in.Console))
	}
	return resp, nil
}

func writeError(w http.ResponseWriter, status int, code, message, reqID string) {
	body, err := xml.Marshal(errorResponse{
		Errors:    []errorXML{{Code: code, Message: message}},
		RequestID: reqID,
	})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, xml.Header)
	_, _ = w.Write(body)
}

func cloneValues(v url.Values) url.Values {
	if v == nil {
		return nil
	}
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}
