package idle

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/skykoi/skykoi/gateway/wake"
	"github.com/skykoi/skykoi/internal/koi"
)

// SetupOptions configure Setup. Only StopAfter and Activity are needed in
// production; the endpoints and credentials are for tests.
type SetupOptions struct {
	// StopAfter is gateway.idle.stopAfterMinutes; 0 turns idle stop off.
	StopAfter time.Duration
	Activity  func() (connections, activeRuns int)
	Logger    *slog.Logger

	// IMDSEndpoint overrides the instance metadata address.
	IMDSEndpoint string
	// EC2Endpoint overrides the EC2 API endpoint.
	EC2Endpoint string
	// Credentials replace the default chain (on the Koi: its instance
	// role, through IMDSEndpoint).
	Credentials aws.CredentialsProvider
	HTTPClient  *http.Client
	Clock       Clock
	CheckEvery  time.Duration

	// NextDue, when set, turns on the wake planner (gateway/wake): before
	// a stop, a schedule starts the instance WakeLead before this time.
	NextDue  func() (time.Time, bool)
	WakeLead time.Duration
	// SchedulerEndpoint overrides the EventBridge Scheduler endpoint.
	SchedulerEndpoint string
}

// Setup builds the Watcher that stops the instance this gateway runs on.
// It returns a nil Watcher, and logs why, when there is nothing to do:
// idle stop is off (StopAfter 0), or the gateway is not on EC2 (no
// instance metadata service answered within koi.IdentityTimeout, as on a
// laptop). An error means it should work and cannot: the metadata service
// answered but gave no usable identity, or the EC2 client cannot be built.
//
// It blocks for up to koi.IdentityTimeout off EC2.
func Setup(ctx context.Context, o SetupOptions) (*Watcher, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.StopAfter <= 0 {
		log.Info("idle stop is off (gateway.idle.stopAfterMinutes is 0)")
		return nil, nil
	}
	id, region, onEC2, err := koi.InstanceIdentity(ctx, o.IMDSEndpoint)
	if !onEC2 {
		attrs := []any{"stopAfter", o.StopAfter.String()}
		if err != nil {
			attrs = append(attrs, "reason", err.Error())
		}
		log.Info("idle stop does nothing here: not running on EC2 (no instance metadata service answered), so there is no instance to stop", attrs...)
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("idle stop: finding this instance: %w", err)
	}
	kc, err := koi.New(ctx, koi.Options{
		Region:       region,
		Endpoint:     o.EC2Endpoint,
		Credentials:  o.Credentials,
		IMDSEndpoint: o.IMDSEndpoint,
		HTTPClient:   o.HTTPClient,
		Logger:       log,
	})
	if err != nil {
		return nil, fmt.Errorf("idle stop: %w", err)
	}
	var beforeStop func(context.Context) (bool, error)
	if o.NextDue != nil {
		role, ok, err := wake.RoleFromIMDS(ctx, o.IMDSEndpoint)
		if err != nil {
			return nil, fmt.Errorf("idle stop: %w", err)
		}
		if !ok {
			log.Warn("wake: this instance has no " + wake.RoleTag + " tag in its metadata, so no wake can be scheduled; it will not stop while a job or heartbeat is due")
		}
		p, err := wake.New(wake.Options{
			Client:     kc.Scheduler(o.SchedulerEndpoint),
			InstanceID: id,
			RoleARN:    role,
			Lead:       o.WakeLead,
			NextDue:    o.NextDue,
			Logger:     log,
		})
		if err != nil {
			return nil, fmt.Errorf("idle stop: %w", err)
		}
		beforeStop = p.BeforeStop
	}
	w, err := New(Options{
		BeforeStop: beforeStop,
		StopAfter:  o.StopAfter,
		Activity:   o.Activity,
		Stop: func(ctx context.Context) error {
			_, _, err := kc.Stop(ctx, id)
			return err
		},
		Clock:      o.Clock,
		CheckEvery: o.CheckEvery,
		Logger:     log,
	})
	if err != nil {
		return nil, err
	}
	log.Info("idle stop is on: this instance stops after a period with no connection and no run",
		"instance", id, "region", region, "stopAfter", o.StopAfter.String())
	return w, nil
}
