package cron

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits on what one job may hold. The message is the agent turn's prompt:
// real ones are a paragraph; a megabyte is a mistake that would be sent to
// the model on every run.
const (
	MaxMessageBytes     = 64 << 10
	maxNameChars        = 200
	maxDescriptionChars = 2000
	// MaxJobs bounds the store: every job is kept in memory and scanned for
	// the next due time.
	MaxJobs = 50000
)

// Job is one scheduled job, shaped as OpenClaw's CronJob on the wire.
type Job struct {
	ID             string   `json:"id"`
	Name           string   `json:"name"`
	Description    string   `json:"description,omitempty"`
	Enabled        bool     `json:"enabled"`
	DeleteAfterRun bool     `json:"deleteAfterRun,omitempty"`
	AgentID        string   `json:"agentId"`
	CreatedAtMs    int64    `json:"createdAtMs"`
	UpdatedAtMs    int64    `json:"updatedAtMs"`
	Schedule       Schedule `json:"schedule"`
	SessionTarget  string   `json:"sessionTarget"`
	WakeMode       string   `json:"wakeMode"`
	Payload        Payload  `json:"payload"`
	Delivery       Delivery `json:"delivery"`
	State          State    `json:"state"`
}

// Payload is what a run does: one agent turn.
type Payload struct {
	Kind           string `json:"kind"`
	Message        string `json:"message"`
	Model          string `json:"model,omitempty"`
	Thinking       string `json:"thinking,omitempty"`
	TimeoutSeconds int    `json:"timeoutSeconds,omitempty"`
}

// Delivery says whether the final text is announced to the main session.
type Delivery struct {
	Mode string `json:"mode"` // announce or none
}

// State is what the scheduler knows of a job; nil fields are unknown.
type State struct {
	NextRunAtMs       *int64 `json:"nextRunAtMs,omitempty"`
	RunningAtMs       *int64 `json:"runningAtMs,omitempty"`
	RunningRunID      string `json:"runningRunId,omitempty"`
	LastRunAtMs       *int64 `json:"lastRunAtMs,omitempty"`
	LastRunStatus     string `json:"lastRunStatus,omitempty"`
	LastStatus        string `json:"lastStatus,omitempty"`
	LastError         string `json:"lastError,omitempty"`
	LastDurationMs    *int64 `json:"lastDurationMs,omitempty"`
	ConsecutiveErrors int    `json:"consecutiveErrors,omitempty"`
}

// Delivery modes and session targets a Koi supports.
const (
	DeliveryAnnounce = "announce"
	DeliveryNone     = "none"
	TargetIsolated   = "isolated"
	PayloadAgentTurn = "agentTurn"
)

// SessionKey is the session a job's runs happen in.
func SessionKey(jobID string) string { return "cron:" + jobID }

// InvalidError is bad input: the caller gets its message, nothing is stored.
type InvalidError struct{ msg string }

func (e *InvalidError) Error() string { return e.msg }

func invalidf(format string, a ...any) error {
	return &InvalidError{msg: fmt.Sprintf(format, a...)}
}

// IsInvalid reports bad input (as opposed to a failure to store).
func IsInvalid(err error) bool {
	var ie *InvalidError
	return errors.As(err, &ie)
}

// NotFoundError names a job id that is not in the store.
type NotFoundError struct{ ID string }

func (e *NotFoundError) Error() string {
	return "cron job not found: " + e.ID + ". List automations (cron.list) and retry with a current job id."
}

// Input is cron.add's params; Patch is cron.update's patch. Fields OpenClaw
// sends that a Koi has no use for (channel routing, declarations) are
// accepted and ignored; ones whose meaning it cannot honour are refused.
type Input struct {
	Name           *string         `json:"name"`
	Description    *string         `json:"description"`
	Enabled        *bool           `json:"enabled"`
	DeleteAfterRun *bool           `json:"deleteAfterRun"`
	AgentID        *string         `json:"agentId"`
	Schedule       *Schedule       `json:"schedule"`
	SessionTarget  *string         `json:"sessionTarget"`
	WakeMode       *string         `json:"wakeMode"`
	Payload        *PayloadInput   `json:"payload"`
	Delivery       *DeliveryInput  `json:"delivery"`
	Trigger        json.RawMessage `json:"trigger"`
	Pacing         json.RawMessage `json:"pacing"`
}

// PayloadInput is a payload as sent; pointers tell absent from cleared
// (model: null clears the override).
type PayloadInput struct {
	Kind           string           `json:"kind"`
	Message        *string          `json:"message"`
	Model          *json.RawMessage `json:"model"`
	Thinking       *json.RawMessage `json:"thinking"`
	TimeoutSeconds *int             `json:"timeoutSeconds"`
	ToolsAllow     []string         `json:"toolsAllow"`
	Text           string           `json:"text"`
}

// DeliveryInput is a delivery as sent.
type DeliveryInput struct {
	Mode string `json:"mode"`
}

// checkText refuses control characters (other than newlines and tabs) and
// invalid UTF-8 in names shown in lists and logs.
func checkText(field, v string, maxChars int) error {
	if !utf8.ValidString(v) {
		return invalidf("%s is not valid UTF-8", field)
	}
	if n := utf8.RuneCountInString(v); n > maxChars {
		return invalidf("%s is %d characters; at most %d", field, n, maxChars)
	}
	if strings.IndexFunc(v, func(r rune) bool { return unicode.IsControl(r) && r != '\n' && r != '\t' }) >= 0 {
		return invalidf("%s must not contain control characters", field)
	}
	return nil
}

// optString decodes an optional string that may be null ("" then).
func optString(raw *json.RawMessage, field string) (string, bool, error) {
	if raw == nil {
		return "", false, nil
	}
	if string(*raw) == "null" {
		return "", true, nil
	}
	var s string
	if err := json.Unmarshal(*raw, &s); err != nil {
		return "", false, invalidf("%s must be a string or null", field)
	}
	return strings.TrimSpace(s), true, nil
}

// applyPayload merges p into dst (a new job's empty payload or an existing
// one) and checks the result.
func applyPayload(dst *Payload, p *PayloadInput, checkModel func(string) error) error {
	if p.Kind != "" && p.Kind != PayloadAgentTurn {
		switch p.Kind {
		case "systemEvent":
			return invalidf("payload.kind systemEvent (a main-session event) is not supported by this Koi; give the job an agent message (openclaw cron add --message ...), which runs in its own session and is announced to the main one")
		default:
			return invalidf("payload.kind %q is not supported by this Koi; only agentTurn jobs (an agent message) run here", p.Kind)
		}
	}
	if len(p.ToolsAllow) > 0 && !(len(p.ToolsAllow) == 1 && p.ToolsAllow[0] == "*") {
		return invalidf("payload.toolsAllow is not supported by this Koi: a job's run uses the tools the config allows (tools.allow / tools.deny); remove --tools")
	}
	dst.Kind = PayloadAgentTurn
	if p.Message != nil {
		dst.Message = *p.Message
	}
	if strings.TrimSpace(dst.Message) == "" {
		return invalidf("payload.message is required: the agent message the job sends")
	}
	if len(dst.Message) > MaxMessageBytes {
		return invalidf("payload.message is %d bytes; at most %d (64 KiB) — put long instructions in a workspace file and ask the job to read it", len(dst.Message), MaxMessageBytes)
	}
	if !utf8.ValidString(dst.Message) {
		return invalidf("payload.message is not valid UTF-8")
	}
	if m, set, err := optString(p.Model, "payload.model"); err != nil {
		return err
	} else if set {
		if m != "" && checkModel != nil {
			if err := checkModel(m); err != nil {
				return invalidf("payload.model: %v", err)
			}
		}
		dst.Model = m
	}
	if th, set, err := optString(p.Thinking, "payload.thinking"); err != nil {
		return err
	} else if set {
		switch th {
		case "", "off", "low", "medium", "high":
		default:
			return invalidf("payload.thinking must be one of off, low, medium, high; got %q", th)
		}
		dst.Thinking = th
	}
	if p.TimeoutSeconds != nil {
		if *p.TimeoutSeconds < 0 || *p.TimeoutSeconds > 86400 {
			return invalidf("payload.timeoutSeconds must be from 0 (the agent's default) to 86400, got %d", *p.TimeoutSeconds)
		}
		dst.TimeoutSeconds = *p.TimeoutSeconds
	}
	return nil
}

// applyInput merges in into j (new or existing), checking every field.
func applyInput(j *Job, in Input, checkModel func(string) error, creating bool) error {
	if len(in.Trigger) > 0 && string(in.Trigger) != "null" {
		return invalidf("trigger (condition scripts) is not supported by this Koi")
	}
	if len(in.Pacing) > 0 && string(in.Pacing) != "null" {
		return invalidf("pacing is not supported by this Koi")
	}
	if in.Name != nil {
		j.Name = strings.TrimSpace(*in.Name)
	}
	if j.Name == "" {
		return invalidf("name is required (openclaw cron add --name ...)")
	}
	if err := checkText("name", j.Name, maxNameChars); err != nil {
		return err
	}
	if in.Description != nil {
		j.Description = strings.TrimSpace(*in.Description)
		if err := checkText("description", j.Description, maxDescriptionChars); err != nil {
			return err
		}
	}
	if in.AgentID != nil {
		if a := strings.TrimSpace(*in.AgentID); a != "" && a != "main" {
			return invalidf("unknown agent %q (this Koi has one agent, \"main\")", a)
		}
	}
	j.AgentID = "main"
	if in.Enabled != nil {
		j.Enabled = *in.Enabled
	}
	if in.SessionTarget != nil {
		switch t := strings.TrimSpace(*in.SessionTarget); t {
		case "", TargetIsolated:
		case "main":
			return invalidf("sessionTarget main is not supported by this Koi: each job runs in its own session (cron:<jobId>) and its answer is announced to the main session; use --session isolated or leave it out")
		default:
			return invalidf("sessionTarget %q is not supported by this Koi; jobs run isolated, in their own session", t)
		}
	}
	j.SessionTarget = TargetIsolated
	if in.WakeMode != nil {
		switch w := strings.TrimSpace(*in.WakeMode); w {
		case "", "now", "next-heartbeat":
			j.WakeMode = w
		default:
			return invalidf("wakeMode must be now or next-heartbeat, got %q", w)
		}
	}
	if j.WakeMode == "" {
		j.WakeMode = "now"
	}
	if in.Payload != nil {
		if err := applyPayload(&j.Payload, in.Payload, checkModel); err != nil {
			return err
		}
	} else if creating {
		return invalidf("payload is required: {\"kind\":\"agentTurn\",\"message\":\"...\"}")
	}
	if in.Delivery != nil {
		switch m := strings.TrimSpace(in.Delivery.Mode); m {
		case "", DeliveryAnnounce:
			j.Delivery.Mode = DeliveryAnnounce
		case DeliveryNone:
			j.Delivery.Mode = DeliveryNone
		case "webhook":
			return invalidf("delivery.mode webhook is not supported by this Koi; the answer is announced to the main session (announce) or kept in the job's own session (none)")
		default:
			return invalidf("delivery.mode must be announce or none, got %q", m)
		}
	}
	if j.Delivery.Mode == "" {
		j.Delivery.Mode = DeliveryAnnounce
	}
	if in.DeleteAfterRun != nil {
		j.DeleteAfterRun = *in.DeleteAfterRun
	}
	return nil
}
