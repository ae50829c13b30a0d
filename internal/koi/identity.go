package koi

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
)

// IdentityTimeout bounds InstanceIdentity. On EC2 the metadata service
// answers in milliseconds; off EC2 its link-local address usually does not
// answer at all, and a gateway on a laptop should not wait long to learn
// that.
const IdentityTimeout = time.Second

// InstanceIdentity asks the instance metadata service (IMDSv2, with a
// session token; never the token-less v1) which instance this is and in
// which region. endpoint overrides the metadata address, for tests; empty
// means the SDK's default (AWS_EC2_METADATA_SERVICE_ENDPOINT, else
// 169.254.169.254).
//
// onEC2 reports whether a metadata service answered at all. Off EC2 it is
// false and err says what happened (no answer, or metadata disabled), which
// is worth logging but is not a failure. With onEC2 true, a non-nil err is
// a real problem: the service answered but not with a usable identity.
func InstanceIdentity(ctx context.Context, endpoint string) (instanceID, region string, onEC2 bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, IdentityTimeout)
	defer cancel()
	hc := &answerRecorder{inner: &http.Client{Transport: &http.Transport{
		// Metadata is link-local: a proxy from the environment must never
		// see the request (or the token).
		Proxy:             nil,
		DisableKeepAlives: true,
	}}}
	defer hc.inner.CloseIdleConnections()
	cl := imds.New(imds.Options{
		Endpoint:   endpoint,
		HTTPClient: hc,
		// IMDSv1 answers without a token; a Koi requires tokens, and
		// falling back would hide a misconfigured hop limit.
		EnableFallback: aws.FalseTernary,
		// Retries cannot fit in the time budget, and off EC2 would only
		// repeat the same silence.
		Retryer: aws.NopRetryer{},
	})
	where := endpoint
	if where == "" {
		where = "the instance metadata service"
	}
	out, err := cl.GetMetadata(ctx, &imds.GetMetadataInput{Path: "instance-id"})
	if err != nil {
		return "", "", hc.answered.Load(), fmt.Errorf("asking %s for the instance ID: %w", where, err)
	}
	raw, err := io.ReadAll(io.LimitReader(out.Content, 256))
	out.Content.Close()
	if err != nil {
		return "", "", true, fmt.Errorf("reading the instance ID from %s: %w", where, err)
	}
	instanceID = strings.TrimSpace(string(raw))
	doc, err := cl.GetInstanceIdentityDocument(ctx, &imds.GetInstanceIdentityDocumentInput{})
	if err != nil {
		return instanceID, "", true, fmt.Errorf("reading the instance identity document from %s: %w", where, err)
	}
	if doc.InstanceID != instanceID || doc.Region == "" {
		return instanceID, doc.Region, true, fmt.Errorf("%s gave instance ID %q but an identity document for %q in region %q",
			where, instanceID, doc.InstanceID, doc.Region)
	}
	return instanceID, doc.Region, true, nil
}

// answerRecorder notes whether any HTTP answer came back. The SDK's
// token step hides the status of a failed token request behind an error
// type without Unwrap, so the error alone cannot tell "nobody there" from
// "there, but refusing".
type answerRecorder struct {
	inner    *http.Client
	answered atomic.Bool
}

func (a *answerRecorder) Do(req *http.Request) (*http.Response, error) {
	resp, err := a.inner.Do(req)
	if resp != nil {
		a.answered.Store(true)
	}
	return resp, err
}
