package bedrock

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	smithy "github.com/aws/smithy-go"
)

// TestBrief: every failure a person sees in a chat is one sentence that
// says what to do, and never the SDK's error chain.
func TestBrief(t *testing.T) {
	c := classifier{ref: "amazon-bedrock/us.anthropic.claude-x", region: "us-east-1"}
	// The shape of the SDK's chain when no provider finds credentials.
	sdkChain := fmt.Errorf("operation error Bedrock Runtime: ConverseStream, %w",
		&credentialsError{err: errors.New("failed to refresh cached credentials, no EC2 IMDS role found, operation error ec2imds: GetMetadata, request canceled")})
	api := func(code, msg string) error {
		return fmt.Errorf("operation error Bedrock Runtime: ConverseStream, https response error StatusCode: 400, RequestID: r1, %w",
			&smithy.GenericAPIError{Code: code, Message: msg})
	}
	for _, tc := range []struct {
		name  string
		err   error
		want  []string // in the sentence
		never string   // chain text that must not show
	}{
		{"no credentials", sdkChain, []string{"The model is unreachable", "no AWS credentials", "AWS_PROFILE", "restart"}, "ec2imds"},
		{"credentials rejected", api("ExpiredTokenException", "The security token included in the request is expired"),
			[]string{"The model is unreachable", "rejected", "ExpiredTokenException", "restart"}, "RequestID"},
		{"access denied", api("AccessDeniedException", "You don't have access to the model with the specified model ID."),
			[]string{"The model is unreachable", "Model access", "us.anthropic.claude-x"}, "RequestID"},
		{"unknown model", api("ValidationException", "The provided model identifier is invalid."),
			[]string{"The model is unreachable", "agents.defaults.model"}, "RequestID"},
		{"throttled", api("ThrottlingException", "Too many requests, please wait before trying again."),
			[]string{"throttling", "ThrottlingException", "send the message again"}, "RequestID"},
		{"quota", api("ServiceQuotaExceededException", "quota"), []string{"quota", "Service Quotas"}, "RequestID"},
		{"outage", api("ServiceUnavailableException", "busy"), []string{"could not answer", "ServiceUnavailableException"}, "RequestID"},
		{"overflow", api("ValidationException", "Input is too long for requested model."), []string{"context window", "/new"}, "RequestID"},
		{"other", errors.New("weird"), []string{"The model call failed"}, "weird"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := c.classify(context.Background(), tc.err)
			got := e.Brief()
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("Brief() = %q, want it to contain %q", got, w)
				}
			}
			if strings.Contains(got, tc.never) {
				t.Errorf("Brief() = %q shows the error chain (%q)", got, tc.never)
			}
			// One sentence: a capital start, one full stop, at the end.
			if got == "" || got[0] < 'A' || got[0] > 'Z' || !strings.HasSuffix(got, ".") || strings.Contains(got[:len(got)-1], ". ") {
				t.Errorf("Brief() = %q is not one sentence", got)
			}
			if strings.Contains(got, "bedrock: ") {
				t.Errorf("Brief() = %q carries the log prefix", got)
			}
		})
	}
}
