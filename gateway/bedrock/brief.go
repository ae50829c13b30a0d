package bedrock

import (
	"errors"
	"strings"

	smithy "github.com/aws/smithy-go"
)

// Brief is the failure as one sentence for the person chatting: what is
// wrong and what to do, without the SDK's error chain (Message and Err keep
// that for the log). Chat clients show it as the failed turn's error and
// health shows it on arrival.
func (e *Error) Brief() string {
	model := e.Model
	if model == "" {
		model = "the model"
	}
	// AWS messages can run to several sentences; the first says enough.
	reason, _, _ := strings.Cut(strings.TrimSpace(e.Reason()), ". ")
	reason = strings.TrimRight(reason, ".")
	switch e.Kind {
	case NoCredentials:
		var apiErr smithy.APIError
		if errors.As(e.Err, &apiErr) {
			return "The model is unreachable: AWS rejected the gateway's credentials (" + apiErr.ErrorCode() +
				"); renew them (aws sso login, or new keys in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) and restart the gateway."
		}
		return "The model is unreachable: the gateway found no AWS credentials; on EC2 attach an IAM instance profile that may call Bedrock, " +
			"elsewhere set AWS_PROFILE or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY for the gateway, then restart it."
	case AccessDenied:
		return "The model is unreachable: Bedrock denied access to " + model + "; enable it on the Model access page of the Amazon Bedrock console " +
			"and allow the gateway's IAM role bedrock:InvokeModelWithResponseStream on it."
	case ModelNotFound:
		return "The model is unreachable: Bedrock does not know " + model + " in this region; fix agents.defaults.model " +
			"(many models need an inference profile id such as us.<modelId>)."
	case Throttled:
		if !e.Retryable {
			return "Bedrock refused the request for lack of quota (" + reason + "); try again later or ask for more in the Service Quotas console."
		}
		return "Bedrock is throttling requests (" + reason + "); wait a moment and send the message again."
	case Unavailable:
		return "Bedrock could not answer (" + reason + "); check the gateway's network (and models.providers.amazon-bedrock.endpoint if set) and send the message again."
	case Timeout:
		return "The model did not answer in time (" + reason + "); send the message again, or raise agents.defaults.timeoutSeconds."
	case ContextOverflow:
		return "The conversation no longer fits the model's context window; start a new session with /new."
	case Stream:
		return "The answer broke off (" + reason + "); the partial answer was kept, send the message again to continue."
	case Canceled:
		return "The model call was canceled."
	case Validation:
		return "Bedrock rejected the request (" + reason + ")."
	}
	return "The model call failed (" + reason + ")."
}
