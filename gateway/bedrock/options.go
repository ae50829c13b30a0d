package bedrock

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// DefaultRegion is used when neither Options nor the environment name one.
const DefaultRegion = "us-east-1"

// Options configure a Provider. The zero value works: default credential
// chain, region from the environment or us-east-1, three attempts per model.
type Options struct {
	// Region is models.providers.amazon-bedrock.region. Empty: AWS_REGION,
	// then AWS_DEFAULT_REGION, then us-east-1.
	Region string
	// Endpoint is models.providers.amazon-bedrock.endpoint (a VPC endpoint,
	// or a test server); empty uses the regional endpoint.
	Endpoint string
	// Credentials, when nil, come from the SDK default chain: environment,
	// shared config/SSO, web identity, ECS, and on EC2 the instance role
	// over IMDSv2.
	Credentials aws.CredentialsProvider
	// HTTPClient replaces the SDK's HTTP client (tests, proxies). The SDK
	// refuses a plain *http.Client when AWS_CA_BUNDLE is set, because it
	// can only add the bundle to its own client type.
	HTTPClient *http.Client
	// MaxAttempts per model for failures before any output; default 3.
	MaxAttempts int
	// BaseBackoff and MaxBackoff bound the jittered exponential backoff
	// between attempts; defaults 500ms and 10s.
	BaseBackoff, MaxBackoff time.Duration
	// IdleTimeout abandons an attempt when Bedrock sends nothing (no
	// headers, no event) for that long; 0 disables it and leaves stalls to
	// the caller's context.
	IdleTimeout time.Duration
	// Logger gets retries, fallbacks and failures (never message text);
	// default slog.Default().
	Logger *slog.Logger
	// Getenv reads the environment for the region; default os.Getenv.
	Getenv func(string) string
}

// Defaults for Options.
const (
	DefaultMaxAttempts = 3
	DefaultBaseBackoff = 500 * time.Millisecond
	DefaultMaxBackoff  = 10 * time.Second
)

// withDefaults fills the zero fields and checks the rest.
func (o Options) withDefaults() (Options, error) {
	if o.MaxAttempts < 0 || o.BaseBackoff < 0 || o.MaxBackoff < 0 || o.IdleTimeout < 0 {
		return o, fmt.Errorf("bedrock options: MaxAttempts, BaseBackoff, MaxBackoff and IdleTimeout must not be negative")
	}
	if o.MaxAttempts == 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	if o.BaseBackoff == 0 {
		o.BaseBackoff = DefaultBaseBackoff
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.MaxBackoff < o.BaseBackoff {
		o.MaxBackoff = o.BaseBackoff
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.Endpoint != "" {
		u, err := url.Parse(o.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return o, fmt.Errorf("bedrock options: endpoint %q is not an http(s) URL; fix models.providers.amazon-bedrock.endpoint", o.Endpoint)
		}
	}
	o.Region = resolveRegion(o.Region, o.Getenv)
	return o, nil
}

// resolveRegion applies the precedence config, environment, us-east-1.
func resolveRegion(configured string, getenv func(string) string) string {
	for _, r := range []string{configured, getenv("AWS_REGION"), getenv("AWS_DEFAULT_REGION")} {
		if r != "" {
			return r
		}
	}
	return DefaultRegion
}
