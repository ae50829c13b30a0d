package gateway

import (
	"context"
	"errors"
	"time"

	"github.com/skykoi/skykoi/gateway/protocol"
	"github.com/skykoi/skykoi/gateway/update"
	"github.com/skykoi/skykoi/internal/version"
)

// updateDownloadTimeout bounds update.run's download: tens of MB from a
// same-region bucket take seconds.
const updateDownloadTimeout = 5 * time.Minute

func (s *Server) updateMethods() map[string]method {
	return map[string]method{
		"update.run":    {protocol.ScopeAdmin, s.mUpdateRun},
		"update.status": {protocol.ScopeAdmin, s.mUpdateStatus},
	}
}

func newUpdater(o Options) *update.Updater {
	return update.New(update.Options{
		StateDir:    o.StateDir,
		Bucket:      o.Getenv(update.EnvBucket),
		Region:      o.Getenv(update.EnvRegion),
		Endpoint:    o.Getenv(update.EnvEndpoint),
		Credentials: o.AWSCredentials,
		Now:         o.Now,
		Logger:      o.Logger,
	})
}

// mUpdateRun stages a new binary for the root supervisor, which restarts
// this gateway shortly after the answer.
func (s *Server) mUpdateRun(cl *call) (any, *protocol.Error) {
	var p update.Request
	if e := cl.params(&p); e != nil {
		return nil, e
	}
	ctx, cancel := context.WithTimeout(context.Background(), updateDownloadTimeout)
	defer cancel()
	st, err := s.updater.Run(ctx, p, version.Get().Version)
	if err != nil {
		var ue *update.Error
		if !errors.As(err, &ue) {
			s.log.Error("update.run", "err", err)
			return nil, protocol.Errorf(protocol.CodeUnavailable, "update: "+err.Error())
		}
		code := protocol.CodeUnavailable
		if ue.Code == "invalid" || ue.Code == "mismatch" {
			code = protocol.CodeInvalidRequest
		}
		s.log.Warn("update.run refused", "reason", ue.Code, "err", err)
		return nil, protocol.Errorf(code, "update: "+err.Error())
	}
	s.log.Info("update.run: new binary staged; the supervisor restarts the gateway", "sha256", p.SHA256)
	return st, nil
}

func (s *Server) mUpdateStatus(*call) (any, *protocol.Error) {
	st, err := s.updater.ReadStatus()
	if err != nil {
		return nil, protocol.Errorf(protocol.CodeUnavailable, "update.status: "+err.Error())
	}
	return map[string]any{"status": st, "version": version.Get().Version}, nil
}

// reportUpdate logs how the last update ended, once, at start: after a
// rollback nobody was connected to hear it, so the journal says it.
func (s *Server) reportUpdate() {
	st, err := s.updater.ReadStatus()
	switch {
	case err != nil:
		s.log.Warn("update: cannot read the last update's status", "err", err)
	case st.State == update.StateRolledBack || st.State == update.StateFailed:
		s.log.Warn("update: the last update did not take", "state", st.State, "sha256", st.SHA256, "message", st.Message)
	case st.State != "" && !update.Final(st.State):
		s.log.Info("update: in progress", "state", st.State, "sha256", st.SHA256)
	}
}
