// Package koi drives a Koi's EC2 instance: its state and status checks,
// starting and stopping it, reading its console (where the bootstrap
// announces the TLS fingerprint and SKYKOI-READY), and waiting until its
// gateway answers /readyz over TLS pinned to that fingerprint. The CLI's
// `skykoi koi` commands and the gateway's idle stop are built on it.
//
// It uses the real aws-sdk-go-v2 EC2 client; tests point it at
// internal/koi/ec2test through Options.Endpoint.
package koi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/scheduler"
	"github.com/aws/smithy-go"
	"github.com/skykoi/skykoi/internal/awslog"
)

// Instance states as EC2 names them.
const (
	StatePending      = string(types.InstanceStateNamePending)
	StateRunning      = string(types.InstanceStateNameRunning)
	StateShuttingDown = string(types.InstanceStateNameShuttingDown)
	StateTerminated   = string(types.InstanceStateNameTerminated)
	StateStopping     = string(types.InstanceStateNameStopping)
	StateStopped      = string(types.InstanceStateNameStopped)
)

// Options configure a Client.
type Options struct {
	// Region of the instance. Empty: the SDK's default resolution
	// (AWS_REGION, then the profile's region).
	Region string
	// Endpoint overrides the EC2 endpoint (BaseEndpoint): VPC endpoints and
	// tests.
	Endpoint string
	// Credentials replace the SDK's default chain (environment, profile,
	// SSO, then the instance role) when set.
	Credentials aws.CredentialsProvider
	// IMDSEndpoint points the SDK's instance-metadata lookups (the
	// instance role's credentials) at another address, for tests.
	IMDSEndpoint string
	// HTTPClient is used for EC2 calls; nil means the SDK's default.
	HTTPClient *http.Client
	// Logger defaults to discarding.
	Logger *slog.Logger
}

// Client talks to EC2 about Koi instances. It is safe for concurrent use.
type Client struct {
	ec2    *ec2.Client
	cfg    aws.Config
	region string
	log    *slog.Logger
	// noLatest remembers that this instance type refused Latest console
	// output, so later polls skip the failing first try.
	noLatest atomic.Bool
}

// ErrNoRegion is returned by New when no region is given or configured.
var ErrNoRegion = errors.New("no AWS region: give --region or set AWS_REGION")

// New builds a client from the SDK's default configuration plus opts.
func New(ctx context.Context, opts Options) (*Client, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// Without a logger the SDK prints plain text to stderr.
	load := []func(*config.LoadOptions) error{config.WithLogger(awslog.New(log))}
	if opts.Region != "" {
		load = append(load, config.WithRegion(opts.Region))
	}
	if opts.Credentials != nil {
		load = append(load, config.WithCredentialsProvider(opts.Credentials))
	}
	if opts.HTTPClient != nil {
		load = append(load, config.WithHTTPClient(opts.HTTPClient))
	}
	if opts.IMDSEndpoint != "" {
		load = append(load, config.WithEC2IMDSEndpoint(opts.IMDSEndpoint))
	}
	cfg, err := config.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return nil, fmt.Errorf("loading the AWS SDK configuration: %w (check AWS_PROFILE and ~/.aws/config)", err)
	}
	if cfg.Region == "" {
		return nil, ErrNoRegion
	}
	if cfg.Credentials != nil {
		cfg.Credentials = markedCredentials{inner: cfg.Credentials}
	}
	cl := ec2.NewFromConfig(cfg, func(o *ec2.Options) {
		if opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(opts.Endpoint)
		}
	})
	return &Client{ec2: cl, cfg: cfg, region: cfg.Region, log: log}, nil
}

// Scheduler is an EventBridge Scheduler client with the same region and
// credentials (the wake schedule lives there); endpoint overrides its
// address for tests.
func (c *Client) Scheduler(endpoint string) *scheduler.Client {
	return scheduler.NewFromConfig(c.cfg, func(o *scheduler.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
	})
}

// Region is the region the client signs requests for.
func (c *Client) Region() string { return c.region }

// Status is what EC2 says about an instance.
type Status struct {
	ID    string
	State string
	// PublicIP and PublicDNS are empty while the instance has no public
	// address (stopped, or in a private subnet).
	PublicIP, PublicDNS string
	// SystemStatus and InstanceStatus are EC2's two status checks: ok,
	// initializing, impaired, insufficient-data or not-applicable (when
	// the instance is not running).
	SystemStatus, InstanceStatus string
	Tags                         map[string]string
}

// Address is the host to reach the instance at: its public IP, else its
// public DNS name; empty when it has neither.
func (s Status) Address() string {
	if s.PublicIP != "" {
		return s.PublicIP
	}
	return s.PublicDNS
}

// Status describes one instance, with its status checks.
func (c *Client) Status(ctx context.Context, id string) (Status, error) {
	if err := checkID(id); err != nil {
		return Status{}, err
	}
	out, err := c.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		return Status{}, c.wrap("describing", "DescribeInstances", id, err)
	}
	var inst *types.Instance
	for _, r := range out.Reservations {
		for i := range r.Instances {
			if aws.ToString(r.Instances[i].InstanceId) == id {
				inst = &r.Instances[i]
			}
		}
	}
	if inst == nil {
		// EC2 answers an empty list rather than NotFound for a just-deleted
		// instance; to the person it is the same mistake.
		return Status{}, &NotFoundError{ID: id, Region: c.region}
	}
	st := Status{
		ID:        id,
		PublicIP:  aws.ToString(inst.PublicIpAddress),
		PublicDNS: aws.ToString(inst.PublicDnsName),
		Tags:      map[string]string{},
	}
	if inst.State != nil {
		st.State = string(inst.State.Name)
	}
	for _, t := range inst.Tags {
		st.Tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	so, err := c.ec2.DescribeInstanceStatus(ctx, &ec2.DescribeInstanceStatusInput{
		InstanceIds: []string{id},
		// Without it EC2 leaves out instances that are not running, and a
		// stopped Koi would look like a missing one.
		IncludeAllInstances: aws.Bool(true),
	})
	if err != nil {
		return Status{}, c.wrap("reading the status checks of", "DescribeInstanceStatus", id, err)
	}
	for _, s := range so.InstanceStatuses {
		if aws.ToString(s.InstanceId) != id {
			continue
		}
		if s.SystemStatus != nil {
			st.SystemStatus = string(s.SystemStatus.Status)
		}
		if s.InstanceStatus != nil {
			st.InstanceStatus = string(s.InstanceStatus.Status)
		}
	}
	return st, nil
}

// Start starts a stopped instance and returns its state before and after
// the call (pending, usually; running when it already was).
func (c *Client) Start(ctx context.Context, id string) (prev, cur string, err error) {
	if err := checkID(id); err != nil {
		return "", "", err
	}
	out, err := c.ec2.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		return "", "", c.wrap("starting", "StartInstances", id, err)
	}
	prev, cur = stateChange(out.StartingInstances, id)
	c.log.Info("koi: start requested", "instance", id, "region", c.region, "previous", prev, "current", cur)
	return prev, cur, nil
}

// Stop stops a running instance (its EBS volumes stay) and returns its
// state before and after the call (stopping, usually).
func (c *Client) Stop(ctx context.Context, id string) (prev, cur string, err error) {
	if err := checkID(id); err != nil {
		return "", "", err
	}
	out, err := c.ec2.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		return "", "", c.wrap("stopping", "StopInstances", id, err)
	}
	prev, cur = stateChange(out.StoppingInstances, id)
	c.log.Info("koi: stop requested", "instance", id, "region", c.region, "previous", prev, "current", cur)
	return prev, cur, nil
}

func stateChange(changes []types.InstanceStateChange, id string) (prev, cur string) {
	for _, ch := range changes {
		if aws.ToString(ch.InstanceId) != id {
			continue
		}
		if ch.PreviousState != nil {
			prev = string(ch.PreviousState.Name)
		}
		if ch.CurrentState != nil {
			cur = string(ch.CurrentState.Name)
		}
	}
	return prev, cur
}

// ConsoleOutput returns the instance's console output as text ("" while
// EC2 has none yet).
//
// It asks for the latest output: without it EC2 returns a snapshot taken
// around the last state change, which does not yet hold the lines the
// bootstrap prints minutes into the first boot. Instance types without
// that option (non-Nitro) fall back to the snapshot.
func (c *Client) ConsoleOutput(ctx context.Context, id string) (string, error) {
	if err := checkID(id); err != nil {
		return "", err
	}
	in := &ec2.GetConsoleOutputInput{InstanceId: aws.String(id)}
	if !c.noLatest.Load() {
		in.Latest = aws.Bool(true)
	}
	out, err := c.ec2.GetConsoleOutput(ctx, in)
	if err != nil && in.Latest != nil && apiCode(err) == "UnsupportedOperation" {
		c.noLatest.Store(true)
		in.Latest = nil
		out, err = c.ec2.GetConsoleOutput(ctx, in)
	}
	if err != nil {
		return "", c.wrap("reading the console of", "GetConsoleOutput", id, err)
	}
	return decodeConsole(aws.ToString(out.Output))
}

// NotFoundError is an instance EC2 does not know in this region (or an ID
// it cannot parse). Usually the wrong ID or the wrong region.
type NotFoundError struct {
	ID, Region string
	Err        error
}

func (e *NotFoundError) Error() string {
	return fmt.Sprintf("no instance %s in region %s: check --instance and --region", e.ID, e.Region)
}

func (e *NotFoundError) Unwrap() error { return e.Err }

// CredentialsError means the SDK found no usable AWS credentials.
type CredentialsError struct{ Err error }

func (e *CredentialsError) Error() string {
	return "no usable AWS credentials: set AWS_PROFILE to a profile in ~/.aws/config " +
		"(after `aws sso login` for SSO), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; " +
		"on EC2, attach an instance role: " + e.Err.Error()
}

func (e *CredentialsError) Unwrap() error { return e.Err }

// PermissionError is EC2 refusing an action to the identity in use.
type PermissionError struct {
	Action, ID string
	Err        error
}

func (e *PermissionError) Error() string {
	return fmt.Sprintf("not allowed to call ec2:%s on %s: give the AWS identity in use that permission (%v)", e.Action, e.ID, e.Err)
}

func (e *PermissionError) Unwrap() error { return e.Err }

// wrap turns SDK errors into ones that say what to do about them.
func (c *Client) wrap(doing, action, id string, err error) error {
	var ce *credentialsError
	if errors.As(err, &ce) {
		return &CredentialsError{Err: ce.err}
	}
	switch code := apiCode(err); {
	case code == "InvalidInstanceID.NotFound" || code == "InvalidInstanceID.Malformed":
		return &NotFoundError{ID: id, Region: c.region, Err: err}
	case code == "UnauthorizedOperation":
		return &PermissionError{Action: action, ID: id, Err: err}
	case code == "AuthFailure":
		return fmt.Errorf("%s %s: EC2 did not accept the AWS credentials (expired, or for another account?): %w", doing, id, err)
	}
	return fmt.Errorf("%s %s in %s: %w", doing, id, c.region, err)
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// checkID refuses an empty ID before a call: EC2 would otherwise answer
// for every instance in the account.
func checkID(id string) error {
	if strings.TrimSpace(id) == "" {
		return errors.New("no instance ID given (like i-0123456789abcdef0)")
	}
	return nil
}

// markedCredentials wraps the credentials provider so that its failures can
// be told apart in the SDK's error chain, which wraps them in plain
// fmt.Errorf layers without a type of their own.
type markedCredentials struct{ inner aws.CredentialsProvider }

func (m markedCredentials) Retrieve(ctx context.Context) (aws.Credentials, error) {
	cr, err := m.inner.Retrieve(ctx)
	if err != nil {
		return cr, &credentialsError{err: err}
	}
	return cr, nil
}

type credentialsError struct{ err error }

func (e *credentialsError) Error() string { return e.err.Error() }
func (e *credentialsError) Unwrap() error { return e.err }

// SortedTags lists tags as key=value, sorted, for display.
func SortedTags(tags map[string]string) []string {
	out := make([]string, 0, len(tags))
	for k, v := range tags {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}
