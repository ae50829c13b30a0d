package bedrocktest

import (
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Reply is the script of one response: steps run in order. Content steps are
// framed as Bedrock frames them: messageStart first; a run of text (or
// reasoning) is one content block that starts with its first delta, with no
// contentBlockStart (the service sends that only for toolUse); every block
// ends with contentBlockStop before the next one starts. A reply without a
// Stop ends with messageStop (tool_use if it called a tool, else end_turn)
// and one without Usage with a metadata event carrying made-up counts, so
// most tests need only the content they care about.
type Reply []Step

// Step is one scripted action; build it with the functions below.
type Step struct {
	kind stepKind

	text      string
	n         int
	id, name  string
	input     string
	signature string
	usage     usageCounts
	reason    string
	errType   string
	message   string
	status    int
	delay     time.Duration
	eventType string
}

type stepKind int

const (
	stepText stepKind = iota + 1
	stepReasoning
	stepToolUse
	stepUsage
	stepStop
	stepException
	stepHTTPError
	stepDelay
	stepHang
	stepDisconnect
	stepRaw
)

type usageCounts struct {
	in, out, cacheRead, cacheWrite int
}

// Text sends s as one text delta.
func Text(s string) Step { return Step{kind: stepText, text: s, n: 1} }

// TextDeltas sends chunk n times, each as its own delta (n events).
func TextDeltas(n int, chunk string) Step { return Step{kind: stepText, text: chunk, n: n} }

// Reasoning sends a reasoning (extended thinking) block: text as one delta,
// then the signature as another, as Anthropic models do on Bedrock.
func Reasoning(text, signature string) Step {
	return Step{kind: stepReasoning, text: text, signature: signature}
}

// ToolUse sends a tool call: contentBlockStart with id and name, the input JSON
// split into a few toolUse deltas (on rune boundaries, like the service), and
// contentBlockStop. An empty inputJSON sends no input delta.
func ToolUse(id, name, inputJSON string) Step {
	return Step{kind: stepToolUse, id: id, name: name, input: inputJSON}
}

// Usage sends a metadata event with these token counts. Without an explicit
// Stop in the reply, messageStop (auto reason) goes out first, because the
// service always sends metadata last.
func Usage(in, out, cacheRead, cacheWrite int) Step {
	return Step{kind: stepUsage, usage: usageCounts{in, out, cacheRead, cacheWrite}}
}

// Stop sends messageStop with reason (end_turn, tool_use, max_tokens,
// stop_sequence, …).
func Stop(reason string) Step { return Step{kind: stepStop, reason: reason} }

// Exception sends an exception message in the stream and ends it, as Bedrock
// does for errors after the 200. kind is the event-stream member name, e.g.
// throttlingException, modelStreamErrorException, internalServerException,
// serviceUnavailableException, validationException; "ThrottlingException"
// is accepted too.
func Exception(kind, message string) Step {
	return Step{kind: stepException, errType: lowerFirst(kind), message: message}
}

// HTTPError answers with an HTTP error before any event: a JSON body
// {"message":…} and the X-Amzn-ErrorType header, as Bedrock does. errorType
// is the exception name, e.g. ThrottlingException, AccessDeniedException.
// After events went out it cannot change the status any more, so there it
// behaves like Disconnect.
func HTTPError(status int, errorType, message string) Step {
	return Step{kind: stepHTTPError, status: status, errType: upperFirst(errorType), message: message}
}

// Delay pauses for d (cut short when the client goes away). Before the first
// event it delays the response headers too.
func Delay(d time.Duration) Step { return Step{kind: stepDelay, delay: d} }

// Hang stalls until the client goes away or the server closes.
func Hang() Step { return Step{kind: stepHang} }

// Disconnect writes half of an event message and drops the connection, so
// the client sees a stream cut inside a frame.
func Disconnect() Step { return Step{kind: stepDisconnect} }

// RawEvent sends an event with any :event-type and JSON payload, for event
// kinds the helpers do not cover (or ones the client must ignore).
func RawEvent(eventType, payloadJSON string) Step {
	return Step{kind: stepRaw, eventType: eventType, text: payloadJSON}
}

// splitChunks cuts s into at most n pieces on rune boundaries: the service
// never splits a character, and a split one would not survive JSON encoding.
func splitChunks(s string, n int) []string {
	if s == "" {
		return nil
	}
	if n < 1 {
		n = 1
	}
	size := (len(s) + n - 1) / n
	var out []string
	for len(s) > 0 {
		cut := min(size, len(s))
		for cut < len(s) && !utf8.RuneStart(s[cut]) {
			cut++
		}
		out = append(out, s[:cut])
		s = s[cut:]
	}
	return out
}

func lowerFirst(s string) string {
	r, size := utf8.DecodeRuneInString(s)
	if size == 0 {
		return s
	}
	return string(unicode.ToLower(r)) + s[size:]
}

func upperFirst(s string) string {
	r, size := utf8.DecodeRuneInString(s)
	if size == 0 {
		return s
	}
	return string(unicode.ToUpper(r)) + s[size:]
}

// httpStatusFor maps an exception name to the status Bedrock uses for it, so
// an in-stream Exception can be replayed on the non-streaming Converse route.
func httpStatusFor(errType string) int {
	switch strings.ToLower(errType) {
	case "throttlingexception":
		return 429
	case "serviceunavailableexception":
		return 503
	case "validationexception":
		return 400
	case "accessdeniedexception":
		return 403
	case "resourcenotfoundexception":
		return 404
	case "modelstreamerrorexception", "modelerrorexception":
		return 424
	case "modeltimeoutexception":
		return 408
	case "modelnotreadyexception":
		return 429
	default:
		return 500
	}
}
