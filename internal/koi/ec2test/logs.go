package ec2test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
)

// Logs is a fake Amazon CloudWatch Logs: a real HTTP server on 127.0.0.1
// speaking the service's JSON 1.1 protocol (POST /, X-Amz-Target
// Logs_20140328.<Action>, application/x-amz-json-1.1 bodies, errors as
// {"__type": …, "message": …} with status 400). Point the real
// cloudwatchlogs client at URL() through BaseEndpoint.
//
// It knows CreateLogStream and PutLogEvents, on log groups a test makes
// with AddGroup, and checks what the real service refuses: unknown groups
// and streams, an existing stream, events out of order, and batches over
// 10,000 events.
type Logs struct {
	srv *httptest.Server

	mu      sync.Mutex
	streams map[string]map[string][]LogEvent // group → stream → events
	puts    int
}

// LogEvent is one event as PutLogEvents carries it.
type LogEvent struct {
	Timestamp int64  `json:"timestamp"`
	Message   string `json:"message"`
}

// NewLogs starts the fake; Close stops it.
func NewLogs() *Logs {
	l := &Logs{streams: map[string]map[string][]LogEvent{}}
	l.srv = httptest.NewServer(http.HandlerFunc(l.serve))
	return l
}

// URL is the endpoint for BaseEndpoint.
func (l *Logs) URL() string { return l.srv.URL }

// Close stops the server.
func (l *Logs) Close() { l.srv.Close() }

// AddGroup makes a log group, as the stack does.
func (l *Logs) AddGroup(name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.streams[name] == nil {
		l.streams[name] = map[string][]LogEvent{}
	}
}

// Events returns what a stream holds, in order.
func (l *Logs) Events(group, stream string) []LogEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]LogEvent(nil), l.streams[group][stream]...)
}

// Puts counts the accepted PutLogEvents calls.
func (l *Logs) Puts() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.puts
}

const logsTargetPrefix = "Logs_20140328."

func logsError(w http.ResponseWriter, kind, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.WriteHeader(http.StatusBadRequest)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": kind, "message": msg})
}

func (l *Logs) serve(w http.ResponseWriter, r *http.Request) {
	action, ok := strings.CutPrefix(r.Header.Get("X-Amz-Target"), logsTargetPrefix)
	if r.Method != http.MethodPost || !ok {
		logsError(w, "UnknownOperationException", "want POST with X-Amz-Target "+logsTargetPrefix+"<Action>")
		return
	}
	if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ") {
		logsError(w, "MissingAuthenticationTokenException", "request is not signed")
		return
	}
	var in struct {
		LogGroupName  string     `json:"logGroupName"`
		LogStreamName string     `json:"logStreamName"`
		LogEvents     []LogEvent `json:"logEvents"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		logsError(w, "SerializationException", err.Error())
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	group, ok := l.streams[in.LogGroupName]
	if !ok {
		logsError(w, "ResourceNotFoundException", "The specified log group does not exist.")
		return
	}
	switch action {
	case "CreateLogStream":
		if _, ok := group[in.LogStreamName]; ok {
			logsError(w, "ResourceAlreadyExistsException", "The specified log stream already exists")
			return
		}
		group[in.LogStreamName] = nil
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		_, _ = w.Write([]byte("{}"))
	case "PutLogEvents":
		events, ok := group[in.LogStreamName]
		if !ok {
			logsError(w, "ResourceNotFoundException", "The specified log stream does not exist.")
			return
		}
		if n := len(in.LogEvents); n == 0 || n > 10000 {
			logsError(w, "InvalidParameterException", fmt.Sprintf("%d events; want 1 to 10000", n))
			return
		}
		for i := 1; i < len(in.LogEvents); i++ {
			if in.LogEvents[i].Timestamp < in.LogEvents[i-1].Timestamp {
				logsError(w, "InvalidParameterException", "Log events in a single PutLogEvents request must be in chronological order.")
				return
			}
		}
		group[in.LogStreamName] = append(events, in.LogEvents...)
		l.puts++
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		_, _ = w.Write([]byte(`{"rejectedLogEventsInfo":null}`))
	default:
		logsError(w, "UnknownOperationException", "the fake does not know "+action)
	}
}
