// Package wake keeps a sleeping Koi's appointments. Before the idle
// watcher stops the instance, a Planner writes one EventBridge Scheduler
// one-time schedule, named after the instance, that starts it a lead time
// (gateway.idle.wakeLeadMinutes) before the next due job or heartbeat. With
// nothing due it deletes that schedule; with something due within the lead
// time it says not to stop at all. A schedule that cannot be written also
// means no stop: a Koi that stays up costs money, one that sleeps through
// its job breaks a promise.
package wake

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/scheduler"
	"github.com/aws/aws-sdk-go-v2/service/scheduler/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// DefaultLead is gateway.idle.wakeLeadMinutes' default.
const DefaultLead = 3 * time.Minute

// StartInstancesTarget is Scheduler's universal target for EC2
// StartInstances.
const StartInstancesTarget = "arn:aws:scheduler:::aws-sdk:ec2:startInstances"

// RoleTag is the instance tag (read through instance metadata) that holds
// the scheduler execution role's ARN; infra sets it.
const RoleTag = "SkykoiWakeRole"

// ScheduleName is the one schedule an instance owns; the instance role's
// IAM allows this name and no other.
func ScheduleName(instanceID string) string { return "skykoi-wake-" + instanceID }

// Options configure a Planner.
type Options struct {
	// Client is the Scheduler client, in the instance's region.
	Client *scheduler.Client
	// InstanceID is the instance to wake.
	InstanceID string
	// RoleARN is the execution role Scheduler assumes to start the
	// instance. Empty means no wake can be scheduled: the Planner then
	// keeps the Koi up whenever something is due.
	RoleARN string
	// Group is the schedule group; empty is "default".
	Group string
	// Lead is how long before the due time the instance starts; default
	// DefaultLead.
	Lead time.Duration
	// NextDue reports the next due job or heartbeat, if any.
	NextDue func() (time.Time, bool)
	// Now defaults to time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Planner decides, before each idle stop, whether to stop and when to wake.
type Planner struct{ o Options }

// New checks opts and fills in defaults.
func New(o Options) (*Planner, error) {
	if o.InstanceID == "" || o.NextDue == nil {
		return nil, errors.New("wake: InstanceID and NextDue are required")
	}
	if o.Client == nil && o.RoleARN != "" {
		return nil, errors.New("wake: a Scheduler client is required with a role")
	}
	if o.Lead <= 0 {
		o.Lead = DefaultLead
	}
	if o.Group == "" {
		o.Group = "default"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Planner{o: o}, nil
}

// Plan is what BeforeStop decided, for logs and tests.
type Plan struct {
	Stop bool
	// WakeAt is the schedule's time, zero when none was written.
	WakeAt time.Time
	// Reason says why, in words for a log.
	Reason string
}

// BeforeStop is the idle watcher's hook: it writes or deletes the wake
// schedule and reports whether the instance may stop. An error means the
// schedule could not be written and the instance must not stop.
func (p *Planner) BeforeStop(ctx context.Context) (bool, error) {
	plan, err := p.Decide(ctx)
	if err != nil {
		return false, err
	}
	p.o.Logger.Info("wake: "+plan.Reason, "stop", plan.Stop, "wakeAt", plan.WakeAt)
	return plan.Stop, nil
}

// Decide does BeforeStop's work and says why.
func (p *Planner) Decide(ctx context.Context) (Plan, error) {
	o := p.o
	name := ScheduleName(o.InstanceID)
	due, ok := o.NextDue()
	if !ok {
		if o.RoleARN == "" {
			return Plan{Stop: true, Reason: "nothing is due; no wake role, so no schedule to remove"}, nil
		}
		if err := p.delete(ctx, name); err != nil {
			// A stale schedule costs one needless wake, after which the
			// Koi idles and stops again; staying up for it costs more.
			o.Logger.Warn("wake: nothing is due, but removing the old wake schedule failed; it may start this Koi once for nothing", "schedule", name, "err", err)
		}
		return Plan{Stop: true, Reason: "nothing is due: no wake schedule"}, nil
	}
	wakeAt := due.Add(-o.Lead).UTC().Truncate(time.Second)
	if !wakeAt.After(o.Now()) {
		return Plan{Stop: false, Reason: fmt.Sprintf("something is due at %s, within the wake lead (gateway.idle.wakeLeadMinutes): staying up", due.UTC().Format(time.RFC3339))}, nil
	}
	if o.RoleARN == "" {
		return Plan{Stop: false, Reason: "something is due, but no wake role is configured (instance tag " + RoleTag + "): staying up so the job is not missed"}, nil
	}
	if err := p.put(ctx, name, wakeAt); err != nil {
		return Plan{}, fmt.Errorf("wake: writing schedule %s to start this instance at %s: %w (not stopping, so the due job is not missed)", name, wakeAt.Format(time.RFC3339), err)
	}
	return Plan{Stop: true, WakeAt: wakeAt, Reason: "wake schedule written"}, nil
}

// Expression is Scheduler's one-time expression for t, in UTC.
func Expression(t time.Time) string {
	return "at(" + t.UTC().Format("2006-01-02T15:04:05") + ")"
}

func (p *Planner) put(ctx context.Context, name string, at time.Time) error {
	o := p.o
	input, err := json.Marshal(map[string][]string{"InstanceIds": {o.InstanceID}})
	if err != nil {
		return err
	}
	target := &types.Target{Arn: aws.String(StartInstancesTarget), RoleArn: aws.String(o.RoleARN), Input: aws.String(string(input))}
	window := &types.FlexibleTimeWindow{Mode: types.FlexibleTimeWindowModeOff}
	desc := aws.String("skykoi: start " + o.InstanceID + " before its next job")
	// Update first: after the first sleep the schedule usually exists.
	_, err = o.Client.UpdateSchedule(ctx, &scheduler.UpdateScheduleInput{
		Name: aws.String(name), GroupName: aws.String(o.Group),
		ScheduleExpression: aws.String(Expression(at)), ScheduleExpressionTimezone: aws.String("UTC"),
		FlexibleTimeWindow: window, Target: target, Description: desc,
		ActionAfterCompletion: types.ActionAfterCompletionDelete,
	})
	if !isCode(err, "ResourceNotFoundException") {
		return err
	}
	_, err = o.Client.CreateSchedule(ctx, &scheduler.CreateScheduleInput{
		Name: aws.String(name), GroupName: aws.String(o.Group),
		ScheduleExpression: aws.String(Expression(at)), ScheduleExpressionTimezone: aws.String("UTC"),
		FlexibleTimeWindow: window, Target: target, Description: desc,
		ActionAfterCompletion: types.ActionAfterCompletionDelete,
	})
	return err
}

func (p *Planner) delete(ctx context.Context, name string) error {
	_, err := p.o.Client.DeleteSchedule(ctx, &scheduler.DeleteScheduleInput{Name: aws.String(name), GroupName: aws.String(p.o.Group)})
	if isCode(err, "ResourceNotFoundException") {
		return nil
	}
	return err
}

func isCode(err error, code string) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == code
}

// Next reads the instance's wake schedule: when it starts the instance,
// and whether there is one. `skykoi koi status` shows it.
func Next(ctx context.Context, c *scheduler.Client, instanceID string) (time.Time, bool, error) {
	out, err := c.GetSchedule(ctx, &scheduler.GetScheduleInput{Name: aws.String(ScheduleName(instanceID))})
	if isCode(err, "ResourceNotFoundException") {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("reading the wake schedule of %s: %w", instanceID, err)
	}
	t, err := ParseExpression(aws.ToString(out.ScheduleExpression), aws.ToString(out.ScheduleExpressionTimezone))
	if err != nil {
		return time.Time{}, false, fmt.Errorf("the wake schedule of %s: %w", instanceID, err)
	}
	return t, true, nil
}

// ParseExpression reads a one-time expression, at(yyyy-mm-ddThh:mm:ss),
// in its time zone (UTC when empty).
func ParseExpression(expr, timezone string) (time.Time, error) {
	inner, ok := strings.CutPrefix(expr, "at(")
	if ok {
		inner, ok = strings.CutSuffix(inner, ")")
	}
	if !ok {
		return time.Time{}, fmt.Errorf("expression %q is not at(yyyy-mm-ddThh:mm:ss)", expr)
	}
	loc := time.UTC
	if timezone != "" {
		l, err := time.LoadLocation(timezone)
		if err != nil {
			return time.Time{}, fmt.Errorf("expression %q: time zone %q: %w", expr, timezone, err)
		}
		loc = l
	}
	t, err := time.ParseInLocation("2006-01-02T15:04:05", inner, loc)
	if err != nil {
		return time.Time{}, fmt.Errorf("expression %q is not at(yyyy-mm-ddThh:mm:ss): %w", expr, err)
	}
	return t, nil
}

// RoleFromIMDS reads the execution role's ARN from the instance tag
// RoleTag through instance metadata (endpoint empty: the real one). ok is
// false when the tag is absent (an older Koi, or tags not exposed).
func RoleFromIMDS(ctx context.Context, endpoint string) (arn string, ok bool, err error) {
	cl := imds.New(imds.Options{Endpoint: endpoint, EnableFallback: aws.FalseTernary})
	out, err := cl.GetMetadata(ctx, &imds.GetMetadataInput{Path: "tags/instance/" + RoleTag})
	if err != nil {
		var re *smithyhttp.ResponseError
		if errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound {
			return "", false, nil
		}
		return "", false, fmt.Errorf("wake: reading instance tag %s from instance metadata: %w", RoleTag, err)
	}
	defer out.Content.Close()
	b, err := io.ReadAll(io.LimitReader(out.Content, 2048))
	if err != nil {
		return "", false, fmt.Errorf("wake: reading instance tag %s: %w", RoleTag, err)
	}
	return strings.TrimSpace(string(b)), true, nil
}
