// Package gateway is the Koi's daemon: one listener for plain HTTP and the
// WebSocket control plane of PROTOCOL.md, connections with their handshake,
// auth and bounded outbound queues, presence, ticks and health, the method
// table, config reloads and a graceful drain.
package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/skykoi/skykoi/configgen"
	"github.com/skykoi/skykoi/gateway/agent"
	"github.com/skykoi/skykoi/gateway/auth"
	"github.com/skykoi/skykoi/gateway/budget"
	"github.com/skykoi/skykoi/gateway/cron"
	"github.com/skykoi/skykoi/gateway/idle"
	"github.com/skykoi/skykoi/gateway/mcp"
	"github.com/skykoi/skykoi/gateway/memory"
	"github.com/skykoi/skykoi/gateway/metrics"
	"github.com/skykoi/skykoi/gateway/protocol"
	"github.com/skykoi/skykoi/gateway/session"
	"github.com/skykoi/skykoi/gateway/skills"
	"github.com/skykoi/skykoi/gateway/update"
	"github.com/skykoi/skykoi/internal/sdnotify"
	"github.com/skykoi/skykoi/internal/version"
)

// Options configure a Server. Zero values take the defaults noted.
type Options struct {
	// Config is the validated config to start with.
	Config configgen.Config
	// ConfigPath is the file Config came from: config.get/set and reloads
	// read and write it.
	ConfigPath string
	// StateDir holds remembered devices and, later, sessions. Defaults to
	// the config file's directory.
	StateDir string
	// Addr overrides the listen address derived from the config (tests use
	// "127.0.0.1:0").
	Addr string
	// Listener, when set, is served instead of listening on the address:
	// a caller that binds first can fail before it writes or shows anything.
	// Run closes it.
	Listener net.Listener
	// Logger defaults to a JSON logger on stderr feeding LogRing.
	Logger *slog.Logger
	// LogLevel is the level variable behind Logger, so reloads can change it.
	LogLevel *slog.LevelVar
	// LogRing backs logs.tail.
	LogRing *LogRing
	// Getenv reads secrets that may come from the environment (os.Getenv).
	Getenv func(string) string
	// Now is the clock (time.Now).
	Now func() time.Time
	// TickInterval and HealthInterval default to the protocol's 30 s and 60 s.
	TickInterval   time.Duration
	HealthInterval time.Duration
	// HandshakeTimeout defaults to the protocol's 10 s.
	HandshakeTimeout time.Duration
	// DrainTimeout bounds how long shutdown waits for in-flight work
	// (default 20 s; the systemd unit's TimeoutStopSec must exceed it).
	DrainTimeout time.Duration
	// PongWait is how long a silent peer lives; pings go out at 9/10 of it.
	PongWait time.Duration
	// WriteWait bounds one frame write (default DefaultWriteWait): a peer
	// that cannot take a frame in that long is cut off without a close
	// frame, since it is not reading one either.
	WriteWait time.Duration
	// MaxBufferedBytes bounds each connection's outbound queue.
	MaxBufferedBytes int
	// Notifier reports readiness to systemd (no-op when unset).
	Notifier sdnotify.Notifier
	// Hostname is reported in hello-ok and presence (os.Hostname).
	Hostname string
	// AWSCredentials replaces the SDK's default credential chain (tests).
	AWSCredentials aws.CredentialsProvider
	// ModelBackoff is the base retry backoff for Bedrock (default 500 ms).
	ModelBackoff time.Duration
	// AgentClock drives run timers (delta coalescing); default wall clock.
	AgentClock agent.Clock
	// MaxQueuedPerSession and MaxRuns bound run admission (defaults
	// agent.DefaultMaxQueuedPerSession and agent.DefaultMaxRuns).
	MaxQueuedPerSession, MaxRuns int
	// Idle stop: IMDSEndpoint and EC2Endpoint override the AWS endpoints,
	// IdleClock and IdleCheckEvery the watcher's timing (tests).
	IMDSEndpoint, EC2Endpoint string
	IdleClock                 idle.Clock
	IdleCheckEvery            time.Duration
	// NextWake replaces the Server's own NextWake (the next cron job or
	// heartbeat) as what the wake schedule before an idle stop is planned
	// from (gateway/wake; tests). SchedulerEndpoint overrides EventBridge
	// Scheduler's address (tests).
	NextWake          func() (time.Time, bool)
	SchedulerEndpoint string

	// Location is the Koi's local time, for session resets and the spend
	// caps' days and months (default time.Local).
	Location *time.Location
}

func (o *Options) setDefaults() error {
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.LogLevel == nil {
		o.LogLevel = new(slog.LevelVar)
		o.LogLevel.Set(ParseLevel(o.Config.Logging.Level))
	}
	if o.LogRing == nil {
		o.LogRing = NewLogRing(logRingLines)
	}
	if o.Logger == nil {
		o.Logger = NewLogger(os.Stderr, o.LogLevel, o.LogRing)
	}
	if o.StateDir == "" && o.ConfigPath != "" {
		o.StateDir = configgen.StateDir(o.ConfigPath, o.Getenv)
	}
	if o.StateDir == "" {
		return errors.New("gateway: Options.StateDir or ConfigPath is required")
	}
	if o.TickInterval <= 0 {
		o.TickInterval = protocol.TickInterval
	}
	if o.HealthInterval <= 0 {
		o.HealthInterval = protocol.HealthInterval
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = protocol.HandshakeTimeout
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 20 * time.Second
	}
	if o.WriteWait <= 0 {
		o.WriteWait = DefaultWriteWait
	}
	if o.PongWait <= 0 {
		o.PongWait = 60 * time.Second
	}
	if o.MaxBufferedBytes <= 0 {
		o.MaxBufferedBytes = protocol.MaxBufferedBytes
	}
	if o.Location == nil {
		o.Location = time.Local
	}
	if o.Hostname == "" {
		o.Hostname, _ = os.Hostname()
	}
	return nil
}

// Server is one gateway. Build it with New and run it with Run.
type Server struct {
	opts    Options
	log     *slog.Logger
	methods map[string]method
	devices *auth.DeviceStore

	sessions *session.Store
	runtime  *agent.Runtime
	parts    *agentParts
	skills   *skills.Catalog // the workspace's skills, for the prompt and skills.status
	memory   *memory.Store
	updater  *update.Updater // update.run and update.status

	mcp *mcp.Manager // MCP tool servers; started by Run, never awaited for readiness

	cron      *cron.Service   // scheduled jobs (cronmethods.go)
	heartbeat *cron.Heartbeat // agents.defaults.heartbeat

	budget  *budget.Budget   // spend caps and the spend record
	metrics *metrics.Metrics // what /metrics serves

	// live is what a reload swaps: the config and everything derived from it.
	live atomic.Pointer[liveConfig]
	// configMu serialises config.set and reloads.
	configMu sync.Mutex

	startedAt time.Time
	ready     atomic.Bool
	draining  atomic.Bool

	mu       sync.Mutex
	conns    map[*conn]struct{}
	joined   []*conn // s.conns in the order they connected, for presence
	presence uint64  // stateVersion.presence
	health   uint64  // stateVersion.health
	lastOK   bool    // health ok at the last broadcast, to detect changes

	model         modelHealth // what health says about the model
	presenceSent  time.Time   // last presence broadcast
	presenceTimer *time.Timer // pending trailing presence broadcast
	listeners     []net.Listener
	addr          net.Addr

	httpSrv  *http.Server
	serveErr chan error     // a listener that failed for good
	inflight sync.WaitGroup // requests being handled
	connWG   sync.WaitGroup // connection goroutines

	idle atomic.Pointer[idle.Watcher] // nil when idle stop is off or not on EC2

	untrustedLogged sync.Map // peer IP → struct{}: forwarding headers ignored
	untrustedCount  atomic.Int64
}

// liveConfig is the config in force and what is derived from it.
type liveConfig struct {
	cfg      configgen.Config
	secret   configgen.Secret
	limiter  *auth.RateLimiter
	proxies  []net.IPNet
	origins  map[string]bool
	hosts    map[string]bool // DNS names the Host rule admits, lower-case
	bindAddr string
}

// New validates options and builds a server; nothing is bound until Run.
func New(opts Options) (*Server, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	s := &Server{
		opts:    opts,
		log:     opts.Logger,
		conns:   map[*conn]struct{}{},
		metrics: metrics.New(),
	}
	lc, err := s.derive(opts.Config)
	if err != nil {
		return nil, err
	}
	s.live.Store(lc)
	if err := os.MkdirAll(opts.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating state dir: %w", err)
	}
	s.devices, err = auth.OpenDeviceStore(opts.StateDir)
	if err != nil {
		return nil, fmt.Errorf("opening device store: %w", err)
	}
	if err := s.setupAgent(opts.Config); err != nil {
		return nil, err
	}
	if err := s.setupCron(); err != nil {
		return nil, err
	}
	s.methods = s.coreMethods()
	for name, m := range s.agentMethods() {
		s.methods[name] = m
	}
	s.updater = newUpdater(opts)
	for name, m := range s.updateMethods() {
		s.methods[name] = m
	}
	s.reportUpdate()

	for name, m := range s.cronMethods() {
		s.methods[name] = m
	}
	for name, m := range s.budgetMethods() {
		s.methods[name] = m
	}
	return s, nil
}

// derive computes what depends on a config. It fails only on things the
// validator cannot know, such as a secret env var that vanished.
func (s *Server) derive(cfg configgen.Config) (*liveConfig, error) {
	g := cfg.Gateway
	lc := &liveConfig{cfg: cfg, secret: cfg.ResolveSecret(s.opts.Getenv), origins: map[string]bool{}}
	rl := g.Auth.RateLimit
	lc.limiter = auth.NewRateLimiter(rl.MaxAttempts, time.Duration(rl.WindowMs)*time.Millisecond,
		time.Duration(rl.LockoutMs)*time.Millisecond, s.opts.Now)
	for _, p := range g.TrustedProxies {
		n, err := parseIPNet(p)
		if err != nil {
			return nil, fmt.Errorf("gateway.trustedProxies: %w", err)
		}
		lc.proxies = append(lc.proxies, n)
	}
	lc.hosts = map[string]bool{}
	for _, o := range g.ControlUI.AllowedOrigins {
		lc.origins[normalizeOrigin(o)] = true
		// A page on an allowed origin may be served by this gateway too
		// (nginx answering to that name).
		if u, err := url.Parse(o); err == nil && u.Hostname() != "" {
			lc.hosts[hostName(u.Host)] = true
		}
	}
	lc.bindAddr = g.ListenAddr()
	if s.opts.Addr != "" {
		lc.bindAddr = s.opts.Addr
	}
	return lc, nil
}

func (s *Server) cfg() configgen.Config { return s.live.Load().cfg }

// Addr is the bound address once Run has started listening (nil before).
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Ready reports whether the server accepts work (what /readyz says).
func (s *Server) Ready() bool { return s.ready.Load() && !s.draining.Load() }

// Run listens and serves until ctx ends, then drains: /readyz turns 503, the
// listener closes, every client gets a shutdown event, in-flight requests get
// up to DrainTimeout, and connections close with 1012. It returns nil after a
// clean drain, or the error that stopped it from serving.
func (s *Server) Run(ctx context.Context) error {
	s.startedAt = s.opts.Now()
	s.httpSrv = &http.Server{
		Handler:           s.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		// Hijacked WebSockets are not subject to these; plain HTTP is tiny.
		ReadTimeout:  30 * time.Second,
		WriteTimeout: 30 * time.Second,
		IdleTimeout:  120 * time.Second,
		ErrorLog:     slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	lc := s.live.Load()
	l := s.opts.Listener
	if l == nil {
		var err error
		if l, err = net.Listen("tcp", lc.bindAddr); err != nil {
			return fmt.Errorf("listening on %s: %w", lc.bindAddr, err)
		}
	}
	s.serveErr = make(chan error, 1)
	s.serve(l, s.serveErr)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var bg sync.WaitGroup
	bg.Add(6)
	go func() { defer bg.Done(); s.runCron(ctx) }()
	go func() { defer bg.Done(); s.checkModelCredentials(ctx) }()
	go func() { defer bg.Done(); s.runIdleStop(ctx) }()
	go func() { defer bg.Done(); s.tickLoop(ctx) }()
	go func() { defer bg.Done(); s.healthLoop(ctx) }()
	go func() {
		defer bg.Done()
		s.opts.Notifier.RunWatchdog(ctx, nil)
	}()

	s.ready.Store(true)
	if err := s.opts.Notifier.Notify("READY=1\nSTATUS=serving on " + l.Addr().String()); err != nil {
		s.log.Warn("systemd notify failed", "err", err)
	}
	s.log.Info("gateway listening", "addr", l.Addr().String(), "auth", lc.cfg.Gateway.Auth.Mode,
		"version", version.Get().Version)
	// MCP servers start only now, in the background and in parallel:
	// readiness never waits for them, and starting their processes does
	// not compete with it either. A turn offers the tools of the servers
	// connected at that moment.
	bg.Add(1)
	go func() { defer bg.Done(); _ = s.mcp.Run(ctx) }()

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-s.serveErr:
		s.log.Error("listener failed", "err", runErr)
	}
	s.drain()
	cancel()
	bg.Wait()
	return runErr
}

// serve starts serving on l and records it as a current listener.
func (s *Server) serve(l net.Listener, errc chan<- error) {
	s.mu.Lock()
	s.listeners = append(s.listeners, l)
	s.addr = l.Addr()
	s.mu.Unlock()
	go func() {
		err := s.httpSrv.Serve(l)
		if err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			select {
			case errc <- err:
			default:
			}
		}
	}()
}

func (s *Server) drain() {
	// Under s.mu, so no connection is counted after this (see trackConn).
	s.mu.Lock()
	s.draining.Store(true)
	s.mu.Unlock()
	_ = s.opts.Notifier.Notify("STOPPING=1")
	s.log.Info("draining", "timeout", s.opts.DrainTimeout.String())
	// Stop accepting: Shutdown closes the listeners; WebSockets are hijacked,
	// so it does not wait on them.
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_ = s.httpSrv.Shutdown(shutCtx)
	cancel()

	s.broadcast(protocol.EventShutdown, protocol.Shutdown{Reason: "gateway stopping"}, nil, false)

	// Runs first (they may be what in-flight agent requests wait for), then
	// the requests themselves.
	s.drainRuns()
	done := make(chan struct{})
	go func() { s.inflight.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		s.log.Warn("drain timeout: closing with requests still in flight")
	}
	for _, c := range s.connList() {
		c.closeWith(protocol.CloseServiceRestart, "service restart", true)
	}
	waited := make(chan struct{})
	go func() { s.connWG.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(5 * time.Second):
		s.log.Warn("some connections did not close in time")
	}
	s.log.Info("drained")
}

func (s *Server) connList() []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		out = append(out, c)
	}
	return out
}

// tickLoop sends tick to every authenticated connection.
func (s *Server) tickLoop(ctx context.Context) {
	t := time.NewTicker(s.opts.TickInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.broadcast(protocol.EventTick, protocol.Tick{TS: s.opts.Now().UnixMilli()}, nil, true)
		}
	}
}

// healthLoop broadcasts health on a timer; changes are broadcast as they
// happen by healthChanged.
func (s *Server) healthLoop(ctx context.Context) {
	t := time.NewTicker(s.opts.HealthInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.broadcastHealth()
		}
	}
}

func (s *Server) broadcastHealth() {
	h := s.healthSnapshot()
	s.mu.Lock()
	s.health++
	s.lastOK = h.OK
	s.mu.Unlock()
	s.broadcast(protocol.EventHealth, h, nil, false)
}

// newID returns a random RFC 4122 version 4 UUID.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// runIdleStop starts the idle-stop watcher when gateway.idle.stopAfterMinutes
// is set and the gateway runs on EC2; it finds the instance over IMDSv2,
// which may take a second off EC2, so it runs beside start-up, not in it.
func (s *Server) runIdleStop(ctx context.Context) {
	cfg := s.cfg()
	nextDue := s.opts.NextWake
	if nextDue == nil {
		nextDue = s.NextWake
	}
	w, err := idle.Setup(ctx, idle.SetupOptions{
		StopAfter: time.Duration(cfg.Gateway.Idle.StopAfterMinutes) * time.Minute,
		Activity: func() (int, int) {
			s.mu.Lock()
			conns := len(s.conns)
			s.mu.Unlock()
			active, queued := s.runtime.Counts()
			return conns, active + queued
		},
		Logger:       s.log.With("component", "idle"),
		IMDSEndpoint: s.opts.IMDSEndpoint,
		EC2Endpoint:  s.opts.EC2Endpoint,
		Credentials:  s.opts.AWSCredentials,
		Clock:        s.opts.IdleClock,
		CheckEvery:   s.opts.IdleCheckEvery,

		NextDue:           nextDue,
		WakeLead:          time.Duration(cfg.Gateway.Idle.WakeLeadMinutes) * time.Minute,
		SchedulerEndpoint: s.opts.SchedulerEndpoint,
	})
	if err != nil {
		s.log.Error("idle stop is off", "err", err)
		return
	}
	if w == nil {
		return
	}
	s.idle.Store(w)
	_ = w.Run(ctx)
}
