package gateway

import (
	"fmt"
	"sync"
	"testing"

	"github.com/skykoi/skykoi/gateway/bedrock/bedrocktest"
	"github.com/skykoi/skykoi/gateway/protocol"
)

// heldModel makes every model call wait until release is called, so runs
// stay in progress as long as a test needs. entered receives one value per
// model call that has started.
func heldModel(t *testing.T, fake *bedrocktest.Server) (entered chan struct{}, release func()) {
	entered = make(chan struct{}, 1024)
	gate := make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(gate) }) }
	t.Cleanup(release)
	fake.Handle(func(bedrocktest.Request) bedrocktest.Reply {
		entered <- struct{}{}
		<-gate
		return bedrocktest.Reply{bedrocktest.Text("done")}
	})
	return entered, release
}

func TestRunQueueBounds(t *testing.T) {
	const perSession, total = 3, 5
	ts, fake := agentServer(t, withOptions(func(o *Options) { o.MaxQueuedPerSession, o.MaxRuns = perSession, total }))
	entered, release := heldModel(t, fake)
	c, _ := dialConnected(t, ts)

	send := func(session, idem string) frame {
		t.Helper()
		return c.call("chat.send", map[string]any{"sessionKey": session, "message": "work on " + idem, "idempotencyKey": idem})
	}
	accepted := func(f frame, want string) {
		t.Helper()
		if !f.OK {
			t.Fatalf("refused: %+v", f.Error)
		}
		if got := unmarshal[map[string]any](t, f.Payload)["status"]; got != want {
			t.Fatalf("status %v, want %q (%s)", got, want, f.Payload)
		}
	}
	refused := func(f frame, scope string) {
		t.Helper()
		e := f.Error
		if f.OK || e == nil || e.Code != protocol.CodeUnavailable || !e.Retryable || e.RetryAfterMs <= 0 {
			t.Fatalf("want UNAVAILABLE, retryable, retryAfterMs > 0; got ok=%v %+v", f.OK, e)
		}
		if d, _ := e.Details.(map[string]any); d["reason"] != "queue_full" || d["scope"] != scope {
			t.Errorf("details %v, want reason queue_full, scope %s", e.Details, scope)
		}
	}

	// One run in progress in main, then the session's queue fills up.
	accepted(send("main", "a0"), "started")
	<-entered
	for i := 1; i <= perSession; i++ {
		accepted(send("main", fmt.Sprintf("a%d", i)), "started")
	}
	refused(send("main", "a-over"), "session")
	// Replays of accepted runs add nothing, so they are answered as before.
	accepted(send("main", "a0"), "in_flight")
	accepted(send("main", "a2"), "in_flight")

	// The total bound spans sessions: 4 runs in main, one more anywhere.
	accepted(send("other", "b0"), "started")
	refused(send("third", "c0"), "total")
	refused(send("other", "b1"), "total")
	refused(c.call("agent", map[string]any{"sessionKey": "third", "message": "hi", "idempotencyKey": "c1"}), "total")
	if res := c.call("status", nil); res.OK {
		runs := unmarshal[struct {
			Runs struct{ Active, Queued int } `json:"runs"`
		}](t, res.Payload).Runs
		if runs.Active+runs.Queued != total {
			t.Errorf("status runs %+v, want %d in all", runs, total)
		}
	}

	// Once the runs end, the same sends are accepted.
	release()
	for _, id := range []string{"a0", "a1", "a2", "a3", "b0"} {
		w := c.call("agent.wait", map[string]any{"runId": id, "timeoutMs": 60000})
		if st := unmarshal[map[string]any](t, w.Payload)["status"]; !w.OK || st != "ok" {
			t.Fatalf("agent.wait %s: %s %+v", id, w.Payload, w.Error)
		}
	}
	accepted(send("main", "a-over"), "started")
	accepted(send("third", "c0"), "started")
	accepted(send("other", "b1"), "started")
}
