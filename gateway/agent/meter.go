package agent

import (
	"context"
	"time"

	"github.com/skykoi/skykoi/gateway/bedrock"
)

// Purposes of a model call, for CallInfo.
const (
	PurposeRun        = "run"        // a step of a run (chat, scheduled, any)
	PurposeCompaction = "compaction" // the summary of a compaction
	PurposeFlush      = "flush"      // a memory flush turn
)

// CallInfo says what a model call is for.
type CallInfo struct {
	SessionKey, SessionID string
	Purpose               string
	// Models are the refs the call may use, in order (fallbacks included).
	Models []string
}

// CallResult is how a model call went.
type CallResult struct {
	Model string // the ref that answered; "" on failure
	Usage bedrock.Usage
	// FirstEvent is the time to the first streamed text or tool input
	// (0 when none came); Duration the whole call.
	FirstEvent, Duration time.Duration
	Err                  error
}

// Meter sees every model call the runtime makes, whatever started it: Allow
// before it (an error refuses the call, and the run ends with that error as
// its message, as any failed model call does), Done after it. Spend caps and
// metrics hang here, so no caller of the model can bypass them.
type Meter interface {
	Allow(ctx context.Context, info CallInfo) error
	Done(info CallInfo, res CallResult)
}

// stream is the one way the runtime calls the model.
func (r *Runtime) stream(ctx context.Context, info CallInfo, req bedrock.Request, onEvent func(bedrock.Event)) (*bedrock.Response, error) {
	m := r.opts.Meter
	if m == nil {
		return r.opts.Model.Stream(ctx, req, onEvent)
	}
	info.Models = req.Models
	if err := m.Allow(ctx, info); err != nil {
		return nil, err
	}
	start := time.Now()
	var first time.Duration
	resp, err := r.opts.Model.Stream(ctx, req, func(ev bedrock.Event) {
		if first == 0 {
			switch ev.(type) {
			case bedrock.TextDelta, bedrock.ToolUseStart, bedrock.ToolUseInputDelta:
				first = time.Since(start)
			}
		}
		onEvent(ev)
	})
	res := CallResult{FirstEvent: first, Duration: time.Since(start), Err: err}
	if resp != nil {
		res.Model, res.Usage = resp.Model, resp.Usage
	}
	m.Done(info, res)
	return resp, err
}
