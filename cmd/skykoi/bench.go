package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/skykoi/skykoi/gateway/client"
	"github.com/skykoi/skykoi/gateway/protocol"
	"github.com/spf13/cobra"
)

// benchResult is one mode's outcome, printed as a table or JSON.
type benchResult struct {
	Mode    string             `json:"mode"`
	URL     string             `json:"url"`
	N       int                `json:"n"`
	Metrics map[string]float64 `json:"metrics"`
	Notes   []string           `json:"notes,omitempty"`
}

func newBenchCmd() *cobra.Command {
	var (
		urlFlag, tokenFile, fingerprint string
		n, hold                         int
		asJSON                          bool
		timeout                         time.Duration
	)
	c := &cobra.Command{
		Use:   "bench MODE",
		Short: "Measure a gateway: handshake, rtt, clients, stream or fanout",
		Long: "Measure a running gateway (local or a Koi) over its real protocol.\n\n" +
			"  handshake  N sequential connects (dial, challenge, connect, hello-ok): p50/p90/p99;\n" +
			"             with --hold H, while H other authenticated connections stay open\n" +
			"  rtt        N health requests on one connection: p50/p90/p99\n" +
			"  clients    hold N authenticated idle connections; the gateway's RSS when it runs on this machine\n" +
			"  stream     N runs (chat.send) and the time to first delta, to final, and events/s\n" +
			"  fanout     one run observed by N clients: the spread of arrival of the final event\n\n" +
			"stream and fanout start real agent runs: against a Koi they cost model tokens.\n" +
			"The token comes from --token-file or SKYKOI_TOKEN.",
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			token, err := gatewayToken(tokenFile)
			if err != nil {
				return err
			}
			opts := client.Options{URL: urlFlag, Token: token, TLSFingerprintSHA256: fingerprint,
				Client: protocol.Client{ID: "skykoi-bench", Version: "1", Platform: "cli", Mode: "bench"}}
			ctx, cancel := context.WithTimeout(c.Context(), timeout)
			defer cancel()
			var res benchResult
			switch args[0] {
			case "handshake":
				res, err = benchHandshake(ctx, opts, n, hold)
			case "rtt":
				res, err = benchRTT(ctx, opts, n)
			case "clients":
				res, err = benchClients(ctx, opts, n)
			case "stream":
				res, err = benchStream(ctx, opts, n)
			case "fanout":
				res, err = benchFanout(ctx, opts, n)
			default:
				return usageError{fmt.Errorf("unknown mode %q: want handshake, rtt, clients, stream or fanout", args[0])}
			}
			if err != nil {
				return err
			}
			res.URL, res.N = urlFlag, n
			if asJSON {
				enc := json.NewEncoder(c.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			return printBench(c.OutOrStdout(), res)
		},
	}
	f := c.Flags()
	f.StringVar(&urlFlag, "url", "ws://127.0.0.1:18789/", "gateway URL (ws:// or wss://)")
	f.StringVar(&tokenFile, "token-file", "", "file holding the gateway token (default $SKYKOI_TOKEN)")
	f.StringVar(&fingerprint, "tls-sha256", "", "pin the gateway's certificate (wss)")
	f.IntVarP(&n, "n", "n", 200, "iterations, or clients for clients/fanout")
	f.IntVar(&hold, "hold", 0, "handshake: idle authenticated connections held open while measuring")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	f.DurationVar(&timeout, "timeout", 10*time.Minute, "give up after this long")
	return c
}

func percentiles(prefix string, d []time.Duration, m map[string]float64) {
	if len(d) == 0 {
		return
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	at := func(q float64) float64 { return float64(d[int(q*float64(len(d)-1))].Microseconds()) / 1000 }
	m[prefix+"_p50_ms"] = at(0.50)
	m[prefix+"_p90_ms"] = at(0.90)
	m[prefix+"_p99_ms"] = at(0.99)
	m[prefix+"_max_ms"] = at(1)
}

func benchHandshake(ctx context.Context, opts client.Options, n, hold int) (benchResult, error) {
	res := benchResult{Mode: "handshake", Metrics: map[string]float64{}}
	if hold > 0 {
		held, err := openIdle(ctx, opts, hold)
		defer closeAll(held)
		if err != nil {
			return res, err
		}
		res.Metrics["held_connections"] = float64(len(held))
		time.Sleep(500 * time.Millisecond) // presence broadcasts settle
	}
	var d []time.Duration
	for i := 0; i < n; i++ {
		start := time.Now()
		c, err := client.Dial(ctx, opts)
		if err != nil {
			return res, fmt.Errorf("connect %d: %w", i+1, err)
		}
		d = append(d, time.Since(start))
		_ = c.Close()
	}
	percentiles("handshake", d, res.Metrics)
	return res, nil
}

// openIdle opens n authenticated connections that only keep themselves
// alive (the client answers pings and reads events), as idle people do.
func openIdle(ctx context.Context, opts client.Options, n int) ([]*client.Client, error) {
	conns := make([]*client.Client, 0, n)
	for i := 0; i < n; i++ {
		c, err := client.Dial(ctx, opts)
		if err != nil {
			return conns, fmt.Errorf("idle connection %d: %w", i+1, err)
		}
		conns = append(conns, c)
	}
	return conns, nil
}

func closeAll(conns []*client.Client) {
	for _, c := range conns {
		_ = c.Close()
	}
}

func benchRTT(ctx context.Context, opts client.Options, n int) (benchResult, error) {
	c, err := client.Dial(ctx, opts)
	if err != nil {
		return benchResult{}, err
	}
	defer c.Close()
	var d []time.Duration
	for i := 0; i < n; i++ {
		start := time.Now()
		if err := c.Request(ctx, "health", nil, nil); err != nil {
			return benchResult{}, fmt.Errorf("health %d: %w", i+1, err)
		}
		d = append(d, time.Since(start))
	}
	m := map[string]float64{}
	percentiles("rtt", d, m)
	return benchResult{Mode: "rtt", Metrics: m}, nil
}

func benchClients(ctx context.Context, opts client.Options, n int) (benchResult, error) {
	res := benchResult{Mode: "clients", Metrics: map[string]float64{}}
	pid := localGatewayPID(opts.URL)
	if pid > 0 {
		res.Metrics["rss_before_mb"] = procRSSMB(pid)
	}
	start := time.Now()
	conns, err := openIdle(ctx, opts, n)
	defer closeAll(conns)
	if err != nil {
		return res, err
	}
	res.Metrics["connect_all_s"] = time.Since(start).Seconds()
	time.Sleep(500 * time.Millisecond) // presence broadcasts settle
	if pid > 0 {
		res.Metrics["rss_after_mb"] = procRSSMB(pid)
	} else {
		res.Notes = append(res.Notes, "the gateway does not run on this machine (or is not found in /proc): RSS not measured")
	}
	var h struct {
		Connections int `json:"connections"`
	}
	if err := conns[0].Request(ctx, "health", nil, &h); err == nil {
		res.Metrics["gateway_connections"] = float64(h.Connections)
	}
	return res, nil
}

// benchStream runs N turns and times each from send to the first chat
// delta and to the final event.
func benchStream(ctx context.Context, opts client.Options, n int) (benchResult, error) {
	c, err := client.Dial(ctx, opts)
	if err != nil {
		return benchResult{}, err
	}
	defer c.Close()
	events, stop := c.Subscribe(4096)
	defer stop()
	var first, total []time.Duration
	var nEvents int
	var streamTime time.Duration
	for i := 0; i < n; i++ {
		key := fmt.Sprintf("bench-%d-%d", time.Now().UnixNano(), i)
		start := time.Now()
		var sent struct {
			RunID string `json:"runId"`
		}
		if err := c.Request(ctx, "chat.send", map[string]any{"sessionKey": "bench", "message": "Reply with a long answer.", "idempotencyKey": key}, &sent); err != nil {
			return benchResult{}, fmt.Errorf("run %d: %w", i+1, err)
		}
		var firstAt time.Time
	wait:
		for {
			select {
			case <-ctx.Done():
				return benchResult{}, ctx.Err()
			case ev := <-events:
				if ev.Event != protocol.EventChat && ev.Event != protocol.EventAgent {
					continue
				}
				var p struct {
					RunID        string `json:"runId"`
					State        string `json:"state"`
					ErrorMessage string `json:"errorMessage"`
				}
				_ = json.Unmarshal(ev.Payload, &p)
				if p.RunID != sent.RunID {
					continue
				}
				nEvents++
				if ev.Event == protocol.EventChat {
					if p.State == "delta" && firstAt.IsZero() {
						firstAt = time.Now()
						first = append(first, firstAt.Sub(start))
					}
					if p.State == "error" {
						return benchResult{}, fmt.Errorf("run %d failed: %s", i+1, p.ErrorMessage)
					}
					if p.State == "final" || p.State == "aborted" {
						break wait
					}
				}
			}
		}
		total = append(total, time.Since(start))
		streamTime += time.Since(start)
	}
	m := map[string]float64{}
	percentiles("first_delta", first, m)
	percentiles("run", total, m)
	m["events_per_s"] = float64(nEvents) / streamTime.Seconds()
	return benchResult{Mode: "stream", Metrics: m}, nil
}

// benchFanout: N clients watch one run; for each client, how long after the
// first client saw the final event it saw it too.
func benchFanout(ctx context.Context, opts client.Options, n int) (benchResult, error) {
	clients := make([]*client.Client, n)
	subs := make([]<-chan client.EventFrame, n)
	for i := range clients {
		c, err := client.Dial(ctx, opts)
		if err != nil {
			return benchResult{}, fmt.Errorf("client %d: %w", i+1, err)
		}
		defer c.Close()
		clients[i] = c
		subs[i], _ = c.Subscribe(1 << 16)
	}
	key := fmt.Sprintf("fanout-%d", time.Now().UnixNano())
	var sent struct {
		RunID string `json:"runId"`
	}
	start := time.Now()
	if err := clients[0].Request(ctx, "chat.send", map[string]any{"sessionKey": "bench", "message": "Reply with a long answer.", "idempotencyKey": key}, &sent); err != nil {
		return benchResult{}, err
	}
	arrivals := make([]time.Time, n)
	counts := make([]int, n)
	var wg sync.WaitGroup
	for i := range subs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case ev := <-subs[i]:
					if ev.Event != protocol.EventChat && ev.Event != protocol.EventAgent {
						continue
					}
					if !strings.Contains(string(ev.Payload), sent.RunID) {
						continue
					}
					counts[i]++
					if ev.Event == protocol.EventChat && (strings.Contains(string(ev.Payload), `"state":"final"`) || strings.Contains(string(ev.Payload), `"state":"error"`)) {
						arrivals[i] = time.Now()
						return
					}
				}
			}
		}(i)
	}
	wg.Wait()
	var earliest time.Time
	for _, a := range arrivals {
		if a.IsZero() {
			return benchResult{}, errors.New("not every client saw the end of the run")
		}
		if earliest.IsZero() || a.Before(earliest) {
			earliest = a
		}
	}
	var lag []time.Duration
	events := 0
	for i, a := range arrivals {
		lag = append(lag, a.Sub(earliest))
		events += counts[i]
	}
	m := map[string]float64{"run_s": earliest.Sub(start).Seconds(), "events_delivered": float64(events),
		"deliveries_per_s": float64(events) / earliest.Sub(start).Seconds()}
	percentiles("final_lag", lag, m)
	return benchResult{Mode: "fanout", Metrics: m}, nil
}

func printBench(w io.Writer, r benchResult) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "mode\t%s\nurl\t%s\nn\t%d\n", r.Mode, r.URL, r.N)
	keys := make([]string, 0, len(r.Metrics))
	for k := range r.Metrics {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(tw, "%s\t%s\n", k, strconv.FormatFloat(r.Metrics[k], 'f', 3, 64))
	}
	for _, n := range r.Notes {
		fmt.Fprintf(tw, "note\t%s\n", n)
	}
	return tw.Flush()
}

// localGatewayPID finds the process listening on the URL's port when the
// gateway runs on this machine, by its socket inode in /proc.
func localGatewayPID(raw string) int {
	u, err := url.Parse(raw)
	if err != nil {
		return 0
	}
	host := u.Hostname()
	if host != "127.0.0.1" && host != "localhost" && host != "::1" {
		return 0
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"ws": "80", "wss": "443"}[u.Scheme]
	}
	p, _ := strconv.Atoi(port)
	return pidListeningOn(p)
}
