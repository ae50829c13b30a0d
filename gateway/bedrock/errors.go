package bedrock

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	smithy "github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// ErrorKind sorts failures by what the caller (and the person behind it)
// can do about them.
type ErrorKind string

// Error kinds.
const (
	// NoCredentials: the SDK found no usable AWS credentials, or AWS rejected
	// them (expired, invalid).
	NoCredentials ErrorKind = "no_credentials"
	// AccessDenied: the credentials work but may not invoke this model
	// (model access not granted, or IAM does not allow it).
	AccessDenied ErrorKind = "access_denied"
	// ModelNotFound: the model id or inference profile does not exist in
	// the region, or needs an inference profile.
	ModelNotFound ErrorKind = "model_not_found"
	// Throttled: request rate or token quota exceeded.
	Throttled ErrorKind = "throttled"
	// Unavailable: the service or model failed on its side, or could not
	// be reached.
	Unavailable ErrorKind = "unavailable"
	// ContextOverflow: the prompt does not fit the model's context window;
	// the caller should drop the oldest turns and try again.
	ContextOverflow ErrorKind = "context_overflow"
	// Validation: Bedrock rejected the request as malformed.
	Validation ErrorKind = "validation"
	// Canceled: the caller's context was canceled.
	Canceled ErrorKind = "canceled"
	// Timeout: the caller's deadline passed, or the model or stream stalled.
	Timeout ErrorKind = "timeout"
	// Stream: the answer broke off after output had been passed to the
	// caller; it is not retried so no text is repeated.
	Stream ErrorKind = "stream"
	// Other: anything else.
	Other ErrorKind = "other"
)

// Error is every error Stream and Ping return. Message says what happened
// and, where a person can fix it, what to do; it never contains
// credentials.
type Error struct {
	Kind ErrorKind
	// Model is the ref the error belongs to ("" when none was involved).
	Model   string
	Message string
	// Retryable is true for transient failures (throttling, 5xx, stalls):
	// trying again later may succeed. Stream already retried those that
	// happened before any output.
	Retryable bool
	// Err is the underlying error, usually from the SDK.
	Err error

	// reason is the short cause ("ThrottlingException: Too many requests")
	// used in Retry and Fallback events and logs.
	reason string
}

func (e *Error) Error() string { return e.Message }

func (e *Error) Unwrap() error { return e.Err }

// Reason is the short cause, without advice: the AWS error code and message,
// or what failed locally.
func (e *Error) Reason() string {
	if e.reason != "" {
		return e.reason
	}
	return string(e.Kind)
}

// credentialsError marks a failure of the credentials provider, so it can be
// told apart from everything else in the SDK's wrapped error chain.
type credentialsError struct{ err error }

func (e *credentialsError) Error() string { return "retrieving AWS credentials: " + e.err.Error() }
func (e *credentialsError) Unwrap() error { return e.err }

// errIdle is the cancel cause when a stream stalls past Options.IdleTimeout.
var errIdle = errors.New("no data from Bedrock within the idle timeout")

// errTruncated is returned when the event stream ends without messageStop:
// the SDK's decoder reports a connection cut inside a frame as a clean end
// of stream, so the missing messageStop is the only sign of it.
var errTruncated = errors.New("the event stream ended before messageStop")

// accessKeyRE matches AWS access key ids, which must not leak into messages
// that end up in logs and chat clients.
var accessKeyRE = regexp.MustCompile(`\b(AKIA|ASIA|AROA|AIDA|ABIA|ACCA)[A-Z0-9]{12,}\b`)

func redact(s string) string { return accessKeyRE.ReplaceAllString(s, "[redacted-key-id]") }

// classifier turns any failure into an *Error for one model.
type classifier struct {
	ref      string
	region   string
	endpoint string
}

func (c classifier) errorf(kind ErrorKind, retryable bool, err error, reason, format string, args ...any) *Error {
	msg := fmt.Sprintf(format, args...)
	if c.ref != "" {
		msg = c.ref + ": " + msg
	}
	return &Error{
		Kind:      kind,
		Model:     c.ref,
		Message:   redact("bedrock: " + msg),
		Retryable: retryable,
		Err:       err,
		reason:    redact(reason),
	}
}

// classify maps err to an *Error. ctx is the caller's context: when it is
// done, that explains the failure better than whatever the transport saw.
func (c classifier) classify(ctx context.Context, err error) *Error {
	var be *Error
	if errors.As(err, &be) {
		return be
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		if errors.Is(ctxErr, context.DeadlineExceeded) {
			return c.errorf(Timeout, false, err, "deadline exceeded",
				"the request ran out of time (the run's timeout, agents.defaults.timeoutSeconds, or the caller's deadline)")
		}
		return c.errorf(Canceled, false, err, "canceled", "the request was canceled")
	}
	if errors.Is(err, errIdle) {
		return c.errorf(Timeout, true, err, "stream idle timeout", "%s", errIdle.Error())
	}

	var ce *credentialsError
	if errors.As(err, &ce) {
		return c.noCredentials(err, ce.err.Error())
	}

	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return c.classifyAPI(err, apiErr.ErrorCode(), apiErr.ErrorMessage())
	}

	var respErr *awshttp.ResponseError
	if errors.As(err, &respErr) {
		status := respErr.HTTPStatusCode()
		reason := fmt.Sprintf("HTTP %d", status)
		switch {
		case status == 429:
			return c.errorf(Throttled, true, err, reason, "Bedrock is throttling requests (HTTP 429)")
		case status >= 500:
			return c.errorf(Unavailable, true, err, reason, "Bedrock answered HTTP %d (a server-side failure)", status)
		case status == 403:
			return c.accessDenied(err, reason, "HTTP 403")
		case status == 404:
			return c.modelNotFound(err, reason, "HTTP 404")
		}
		return c.errorf(Other, false, err, reason, "Bedrock answered HTTP %d: %v", status, err)
	}

	if errors.Is(err, errTruncated) {
		return c.errorf(Unavailable, true, err, "stream truncated", "%s (the connection was cut)", errTruncated.Error())
	}

	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return c.errorf(Timeout, true, err, "network timeout", "no answer from Bedrock at %s in time: %v", c.where(), err)
	}
	var sendErr *smithyhttp.RequestSendError
	if errors.As(err, &sendErr) || errors.As(err, &netErr) || errors.Is(err, io.ErrUnexpectedEOF) {
		return c.errorf(Unavailable, true, err, "connection failed",
			"could not talk to Bedrock at %s: %v (check the network, and models.providers.amazon-bedrock.endpoint if set)", c.where(), err)
	}
	return c.errorf(Other, false, err, "unexpected error", "%v", err)
}

func (c classifier) where() string {
	if c.endpoint != "" {
		return c.endpoint
	}
	return "the " + c.region + " endpoint"
}

func (c classifier) classifyAPI(err error, code, msg string) *Error {
	reason := code
	if msg != "" {
		reason = code + ": " + msg
	}
	switch strings.ToLower(code) {
	case "throttlingexception", "toomanyrequestsexception":
		return c.errorf(Throttled, true, err, reason, "Bedrock is throttling requests (%s)", reason)
	case "servicequotaexceededexception":
		return c.errorf(Throttled, false, err, reason,
			"a Bedrock quota is used up (%s); request an increase in the Service Quotas console for region %s, or lower agents.defaults.maxTokens", reason, c.region)
	case "serviceunavailableexception", "modelnotreadyexception", "internalserverexception", "internalfailure", "modelstreamerrorexception":
		return c.errorf(Unavailable, true, err, reason, "Bedrock could not serve the model right now (%s)", reason)
	case "modeltimeoutexception":
		return c.errorf(Timeout, true, err, reason, "the model took too long to answer (%s)", reason)
	case "accessdeniedexception":
		return c.accessDenied(err, reason, reason)
	case "resourcenotfoundexception":
		return c.modelNotFound(err, reason, reason)
	case "unrecognizedclientexception", "invalidsignatureexception", "signaturedoesnotmatch",
		"expiredtokenexception", "expiredtoken", "invalidclienttokenid", "incompletesignature",
		"incompletesignatureexception", "missingauthenticationtokenexception", "missingauthenticationtoken":
		return c.noCredentials(err, "AWS rejected the credentials ("+reason+")")
	case "validationexception":
		switch {
		case isContextOverflow(msg):
			return c.errorf(ContextOverflow, false, err, reason,
				"the conversation is longer than the model's context window (%s); drop the oldest turns and try again", reason)
		case isUnknownModel(msg):
			return c.modelNotFound(err, reason, reason)
		case needsInferenceProfile(msg):
			return c.errorf(ModelNotFound, false, err, reason,
				"this model cannot be invoked by its plain id (%s); use an inference profile id instead, e.g. us.<modelId> or global.<modelId>, in agents.defaults.model", reason)
		}
		return c.errorf(Validation, false, err, reason, "Bedrock rejected the request (%s)", reason)
	}
	var respErr *awshttp.ResponseError
	if errors.As(err, &respErr) && respErr.HTTPStatusCode() >= 500 {
		return c.errorf(Unavailable, true, err, reason, "Bedrock failed on its side (%s, HTTP %d)", reason, respErr.HTTPStatusCode())
	}
	return c.errorf(Other, false, err, reason, "Bedrock returned an error (%s)", reason)
}

func (c classifier) noCredentials(err error, detail string) *Error {
	return c.errorf(NoCredentials, false, err, "no usable AWS credentials: "+detail,
		"no usable AWS credentials for Bedrock (%s). On EC2, attach an IAM instance profile whose role allows bedrock:InvokeModelWithResponseStream "+
			"(the SDK reads it over IMDSv2, no environment variables needed); elsewhere set AWS_PROFILE (after aws configure or aws sso login) "+
			"or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", detail)
}

func (c classifier) accessDenied(err error, reason, detail string) *Error {
	return c.errorf(AccessDenied, false, err, reason,
		"Bedrock denied access to this model (%s). Enable the model on the Model access page of the Amazon Bedrock console for region %s, "+
			"and grant the instance role (or your IAM identity) bedrock:InvokeModelWithResponseStream and bedrock:InvokeModel on it "+
			"(for an inference profile: on the profile and on the foundation model in every region it routes to)", detail, c.region)
}

func (c classifier) modelNotFound(err error, reason, detail string) *Error {
	return c.errorf(ModelNotFound, false, err, reason,
		"Bedrock does not know this model in region %s (%s). Check agents.defaults.model (primary and fallbacks) for typos, "+
			"and that the model id or inference profile exists in %s (aws bedrock list-foundation-models / list-inference-profiles --region %s)",
		c.region, detail, c.region, c.region)
}

// isContextOverflow recognises the ValidationException messages Bedrock
// models use when the prompt is too long. Matching is on phrases, because
// there is no distinct error code; phrases about output limits (max_tokens)
// must not match, since trimming the transcript would not help there.
func isContextOverflow(msg string) bool {
	m := strings.ToLower(msg)
	for _, p := range []string{
		"input is too long",
		"prompt is too long",
		"too many input tokens",
		"input tokens exceed",
		"input token count exceeds",
		"exceeds the context window",
		"context window exceeded",
		"maximum context length",
		"context length exceeded",
		"exceeds the maximum number of input tokens",
	} {
		if strings.Contains(m, p) {
			return true
		}
	}
	return strings.Contains(m, "too many tokens") && !strings.Contains(m, "please wait")
}

func isUnknownModel(msg string) bool {
	m := strings.ToLower(msg)
	return strings.Contains(m, "model identifier is invalid") ||
		strings.Contains(m, "model id is invalid") ||
		strings.Contains(m, "invalid model identifier")
}

func needsInferenceProfile(msg string) bool {
	m := strings.ToLower(msg)
	return strings.Contains(m, "on-demand throughput") && strings.Contains(m, "inference profile")
}
