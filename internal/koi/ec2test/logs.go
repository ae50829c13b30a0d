package ec2test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// CloudWatch Logs, as the stand-in speaks it: the service's JSON 1.1
// protocol (POST /, X-Amz-Target Logs_20140328.<Action>,
// application/x-amz-json-1.1 bodies, errors as {"__type": …, "message": …}
// with status 400), signed like every other API here. Point the real
// cloudwatchlogs client at URL() through BaseEndpoint.
//
// It knows CreateLogStream and PutLogEvents, on log groups a test makes
// with AddLogGroup, and refuses what the real service refuses: unknown
// groups and streams, an existing stream, events out of order, and
// batches of none or over 10,000 events.

// LogEvent is one event as PutLogEvents carries it.
type LogEvent struct {
	Timestamp int64  `json:"timestamp"`
	Message   string `json:"message"`
}

const logsTargetPrefix = "Logs_20140328."

// AddLogGroup makes a log group, as the stack does.
func (s *Server) AddLogGroup(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.logStreams[name] == nil {
		s.logStreams[name] = map[string][]LogEvent{}
	}
}

// LogEvents returns what a stream holds, in order.
func (s *Server) LogEvents(group, stream string) []LogEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]LogEvent(nil), s.logStreams[group][stream]...)
}

// LogPuts counts the accepted PutLogEvents calls.
func (s *Server) LogPuts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logPuts
}

func writeLogsError(w http.ResponseWriter, status int, kind, msg, reqID string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-RequestId", reqID)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": kind, "message": msg})
}

func (s *Server) serveLogs(w http.ResponseWriter, r *http.Request, body []byte) {
	reqID := s.requestID()
	action, ok := strings.CutPrefix(r.Header.Get("X-Amz-Target"), logsTargetPrefix)
	call := Call{Service: "logs", Method: r.Method, Path: r.URL.Path, Action: action,
		Region: credentialRegion(r.Header.Get("Authorization"))}
	fail := func(kind, msg string) {
		call.Status, call.Err = http.StatusBadRequest, kind+": "+msg
		s.record(call)
		writeLogsError(w, http.StatusBadRequest, kind, msg, reqID)
	}
	if r.Method != http.MethodPost || !ok {
		fail("UnknownOperationException", "want POST with X-Amz-Target "+logsTargetPrefix+"<Action>")
		return
	}
	var in struct {
		LogGroupName  string     `json:"logGroupName"`
		LogStreamName string     `json:"logStreamName"`
		LogEvents     []LogEvent `json:"logEvents"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		fail("SerializationException", err.Error())
		return
	}
	answer, kind, msg := s.logsAction(action, in.LogGroupName, in.LogStreamName, in.LogEvents)
	if kind != "" {
		fail(kind, msg)
		return
	}
	call.Status = http.StatusOK
	s.record(call)
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-RequestId", reqID)
	_, _ = w.Write([]byte(answer))
}

// logsAction carries out one Logs action on the state: the answer's body,
// or the error's __type and message.
func (s *Server) logsAction(action, groupName, streamName string, events []LogEvent) (answer, kind, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	group, ok := s.logStreams[groupName]
	if !ok {
		return "", "ResourceNotFoundException", "The specified log group does not exist."
	}
	switch action {
	case "CreateLogStream":
		if _, ok := group[streamName]; ok {
			return "", "ResourceAlreadyExistsException", "The specified log stream already exists"
		}
		group[streamName] = nil
		return "{}", "", ""
	case "PutLogEvents":
		stored, ok := group[streamName]
		if !ok {
			return "", "ResourceNotFoundException", "The specified log stream does not exist."
		}
		if n := len(events); n == 0 || n > 10000 {
			return "", "InvalidParameterException", fmt.Sprintf("%d events; want 1 to 10000", n)
		}
		for i := 1; i < len(events); i++ {
			if events[i].Timestamp < events[i-1].Timestamp {
				return "", "InvalidParameterException", "Log events in a single PutLogEvents request must be in chronological order."
			}
		}
		group[streamName] = append(stored, events...)
		s.logPuts++
		return `{"rejectedLogEventsInfo":null}`, "", ""
	}
	return "", "UnknownOperationException", "the stand-in does not know " + action
}
