package gateway

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"

	"github.com/skykoi/skykoi/configgen"
	"github.com/skykoi/skykoi/gateway/protocol"
	"github.com/skykoi/skykoi/internal/atomicfile"
)

// readConfigFile returns the config file's bytes and their SHA-256 hex.
func (s *Server) readConfigFile() ([]byte, string, error) {
	if s.opts.ConfigPath == "" {
		return nil, "", errors.New("the gateway was started without a config file")
	}
	f, err := os.Open(s.opts.ConfigPath)
	if err != nil {
		return nil, "", fmt.Errorf("reading config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, configgen.MaxFileSize+1))
	if err != nil {
		return nil, "", fmt.Errorf("reading config: %w", err)
	}
	if len(data) > configgen.MaxFileSize {
		return nil, "", fmt.Errorf("reading config: larger than %d bytes", configgen.MaxFileSize)
	}
	return data, hashHex(data), nil
}

func hashHex(b []byte) string {
	d := sha256.Sum256(b)
	return hex.EncodeToString(d[:])
}

func (s *Server) mConfigGet(*call) (any, *protocol.Error) {
	data, hash, err := s.readConfigFile()
	if err != nil {
		return nil, &protocol.Error{Code: protocol.CodeUnavailable, Message: err.Error()}
	}
	tree, err := configgen.DecodeRaw(data)
	if err != nil {
		// The file changed on disk into something unreadable since start-up;
		// still show where it is and its hash, so config.set can replace it.
		return map[string]any{"path": s.opts.ConfigPath, "hash": hash, "config": nil, "valid": false,
			"issues": issuesOf(err)}, nil
	}
	// valid means what a restart or SIGHUP would conclude, so the file gets
	// the full validator (the same one ParseEnv runs at start-up), not only
	// the syntax check above.
	issues := []configgen.Issue{}
	if _, err := configgen.ParseEnv(data, s.opts.Getenv); err != nil {
		issues = issuesOf(err)
	}
	return map[string]any{"path": s.opts.ConfigPath, "hash": hash, "config": configgen.Redact(tree),
		"valid": len(issues) == 0, "issues": issues}, nil
}

func issuesOf(err error) []configgen.Issue {
	var ce *configgen.Error
	if errors.As(err, &ce) {
		return ce.Issues
	}
	return []configgen.Issue{{Message: err.Error()}}
}

func invalidConfig(err error) *protocol.Error {
	return protocol.Errorf(protocol.CodeInvalidRequest, "invalid config").
		WithDetails(map[string]any{"issues": issuesOf(err)})
}

func (s *Server) mConfigSet(cl *call) (any, *protocol.Error) {
	var p struct {
		Raw      *string `json:"raw"`
		BaseHash *string `json:"baseHash"`
	}
	if e := cl.params(&p); e != nil {
		return nil, e
	}
	if p.Raw == nil {
		return nil, protocol.Errorf(protocol.CodeInvalidRequest, "invalid params: raw (the whole config file as JSON5 text) is required")
	}
	if p.BaseHash == nil {
		return nil, protocol.Errorf(protocol.CodeInvalidRequest, "invalid params: baseHash (the hash from config.get) is required")
	}
	s.configMu.Lock()
	defer s.configMu.Unlock()
	cur, curHash, err := s.readConfigFile()
	if err != nil {
		return nil, &protocol.Error{Code: protocol.CodeUnavailable, Message: err.Error(), Retryable: true}
	}
	if *p.BaseHash != curHash {
		return nil, protocol.Errorf(protocol.CodeInvalidRequest,
			"config changed since it was read (baseHash does not match); read it again with config.get").
			WithDetails(map[string]any{"hash": curHash})
	}
	next := []byte(*p.Raw)
	if bytes.Contains(next, []byte(configgen.Redacted)) {
		if next, err = restoreSecrets(next, cur); err != nil {
			return nil, invalidConfig(err)
		}
	}
	cfg, err := configgen.ParseEnv(next, s.opts.Getenv)
	if err != nil {
		return nil, invalidConfig(err)
	}
	res, err := s.applyConfig(cfg, func() error {
		perm := os.FileMode(0o600)
		if st, err := os.Stat(s.opts.ConfigPath); err == nil {
			perm = st.Mode().Perm()
		}
		return atomicfile.Write(s.opts.ConfigPath, next, perm)
	})
	if err != nil {
		return nil, &protocol.Error{Code: protocol.CodeUnavailable, Message: err.Error()}
	}
	res["ok"] = true
	res["path"] = s.opts.ConfigPath
	res["hash"] = hashHex(next)
	s.log.Info("config updated by config.set", "conn", cl.c.id, "applied", res["applied"])
	return res, nil
}

// restoreSecrets puts the current file's secrets back where a client sent
// the redaction marker it got from config.get. The result is plain JSON, so
// comments in raw are not kept in that case.
func restoreSecrets(raw, cur []byte) ([]byte, error) {
	tree, err := configgen.DecodeRaw(raw)
	if err != nil {
		return nil, err
	}
	curTree, _ := configgen.DecodeRaw(cur)
	var issues []configgen.Issue
	for _, path := range configgen.SecretPaths() {
		v, ok := configgen.Get(tree, path)
		if !ok || v != configgen.Redacted {
			continue
		}
		old, ok := configgen.Get(curTree, path)
		if !ok || curTree == nil {
			issues = append(issues, configgen.Issue{Path: path, Message: configgen.Redacted + " keeps the current value, but the current file has none"})
			continue
		}
		configgen.Set(tree, path, old)
	}
	if len(issues) > 0 {
		return nil, &configgen.Error{Issues: issues}
	}
	return configgen.Marshal(tree)
}

// Reload re-reads the config file and applies it (SIGHUP). An invalid file
// keeps the running config; every issue is logged.
func (s *Server) Reload() error {
	s.configMu.Lock()
	defer s.configMu.Unlock()
	data, _, err := s.readConfigFile()
	if err != nil {
		s.log.Error("reload failed; keeping the running config", "err", err)
		return err
	}
	cfg, err := configgen.ParseEnv(data, s.opts.Getenv)
	if err != nil {
		for _, is := range issuesOf(err) {
			s.log.Error("reload: invalid config; keeping the running config", "issue", is.String())
		}
		return err
	}
	res, err := s.applyConfig(cfg, nil)
	if err != nil {
		s.log.Error("reload failed; keeping the running config", "err", err)
		return err
	}
	s.log.Info("config reloaded", "applied", res["applied"])
	return nil
}

// applyConfig makes cfg the running config. commit (may be nil) persists it
// and runs after everything that can fail has been prepared, so a failure
// leaves both the file and the running config as they were. A changed
// listen address gets a new listener before the old one closes; established
// connections are kept.
func (s *Server) applyConfig(cfg configgen.Config, commit func() error) (map[string]any, error) {
	lc, err := s.derive(cfg)
	if err != nil {
		return nil, err
	}
	old := s.live.Load()
	res := map[string]any{"applied": "hot", "listenerRestarted": false}
	if cfg.Gateway.Reload.Mode == "off" && commit != nil {
		// reload.mode off: write, but change nothing until the next start.
		if err := commit(); err != nil {
			return nil, err
		}
		res["applied"] = "none"
		res["restartRequired"] = true
		return res, nil
	}
	var nl net.Listener
	if lc.bindAddr != old.bindAddr && s.httpSrv != nil {
		if nl, err = net.Listen("tcp", lc.bindAddr); err != nil {
			return nil, fmt.Errorf("listening on %s: %w", lc.bindAddr, err)
		}
	}
	if commit != nil {
		if err := commit(); err != nil {
			if nl != nil {
				nl.Close()
			}
			return nil, err
		}
	}
	s.live.Store(lc)
	s.opts.LogLevel.Set(ParseLevel(cfg.Logging.Level))
	if s.parts != nil {
		if err := s.rebuildAgentParts(cfg); err != nil {
			s.log.Error("applying the agent config", "err", err)
		}
		if err := s.sessions.SetResetPolicy(cfg.Session.Reset); err != nil {
			s.log.Error("applying the session reset policy", "err", err)
		}
	}
	if s.mcp != nil {
		s.mcp.Update(cfg.MCP.Servers)
	}

	s.cronReloaded()
	if nl != nil {
		s.mu.Lock()
		olds := s.listeners
		s.listeners = nil
		s.mu.Unlock()
		s.serve(nl, s.serveErr)
		for _, l := range olds {
			l.Close()
		}
		res["applied"] = "restart"
		res["listenerRestarted"] = true
		s.log.Info("listener moved", "addr", nl.Addr().String())
	}
	return res, nil
}
