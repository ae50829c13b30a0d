package gateway

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/skykoi/skykoi/gateway/files"
	"github.com/skykoi/skykoi/gateway/protocol"
	"github.com/skykoi/skykoi/gateway/session"
)

// Attachments and downloads: the logic is in gateway/files; these are the
// thin ends that speak the protocol and HTTP.

func attachmentPolicy() *protocol.AttachmentPolicy {
	l := files.DefaultLimits()
	return &protocol.AttachmentPolicy{MaxBytes: l.MaxBytes, MaxImageBytes: l.MaxImageBytes, MaxCount: l.MaxCount, MaxTotalBytes: l.MaxTotalBytes}
}

// checkMessageWith is checkMessage, except that a message carrying files
// may have no text.
func checkMessageWith(msg string, attachments int) *protocol.Error {
	if attachments > 0 && strings.TrimSpace(msg) == "" {
		if len(msg) > maxMessageChars {
			return invalid("invalid params: message is larger than 1 MiB")
		}
		return nil
	}
	return checkMessage(msg)
}

func decodeAttachments(list []json.RawMessage) ([]files.Attachment, *protocol.Error) {
	if len(list) == 0 {
		return nil, nil
	}
	atts, err := files.Decode(list, files.DefaultLimits())
	if err != nil {
		var fe *files.Error
		if errors.As(err, &fe) {
			return nil, invalid("invalid params: " + fe.Error()).WithDetails(map[string]any{"reason": fe.Reason, "index": fe.Index})
		}
		return nil, invalid("invalid params: " + err.Error())
	}
	return atts, nil
}

// saveAttachments writes checked attachments to the workspace inbox and
// returns their transcript references.
func (s *Server) saveAttachments(atts []files.Attachment) ([]session.Content, *protocol.Error) {
	if len(atts) == 0 {
		return nil, nil
	}
	refs, err := files.Save(s.workspace(s.cfg()), atts, s.opts.Now())
	if err != nil {
		s.log.Error("saving attachments", "err", err)
		return nil, &protocol.Error{Code: protocol.CodeUnavailable, Message: "could not save the attachments in the workspace inbox: " + err.Error(), Retryable: true}
	}
	out := make([]session.Content, len(refs))
	for i, r := range refs {
		out[i] = session.Content{Type: "attachment", Path: r.Path, MimeType: r.MimeType, Size: r.Size, SHA256: r.SHA256, FileName: r.FileName}
	}
	return out, nil
}

// keepAttachments removes saved files again unless a new run took them (a
// refused Submit, or an idempotent replay whose run has its own copies).
func (s *Server) keepAttachments(refs []session.Content, taken bool) {
	if taken || len(refs) == 0 {
		return
	}
	fr := make([]files.Ref, len(refs))
	for i, r := range refs {
		fr[i] = files.Ref{Path: r.Path}
	}
	files.Remove(s.workspace(s.cfg()), fr)
}

// serveDownload answers GET /files/<path>: a file of the workspace, to the
// holder of the gateway's token or password (Authorization: Bearer; the
// page sends the one it holds, never in the URL). Failed secrets count
// toward the same per-IP lockout as failed handshakes.
func (s *Server) serveDownload(w http.ResponseWriter, r *http.Request) {
	lc := s.live.Load()
	if s.refuseHost(w, r, lc) {
		return
	}
	if origin := r.Header.Get("Origin"); origin != "" && !originAllowed(origin, r.Host, lc.origins) {
		writeJSON(w, http.StatusForbidden, map[string]any{"ok": false, "error": "origin " + origin + " is not allowed; add it to gateway.controlUi.allowedOrigins"})
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeJSON(w, http.StatusMethodNotAllowed, map[string]any{"ok": false, "error": "downloads are GET only"})
		return
	}
	if lc.secret.Mode == "none" {
		writeJSON(w, http.StatusForbidden, map[string]any{"ok": false,
			"error": `downloads need a secret: set gateway.auth.mode to "token" (or "password") and send it as Authorization: Bearer <secret>`})
		return
	}
	ip := s.clientIP(r, lc)
	if ok, retry := lc.limiter.Allow(ip); !ok {
		w.Header().Set("Retry-After", strconv.Itoa(int(retry.Seconds())+1))
		writeJSON(w, http.StatusTooManyRequests, map[string]any{"ok": false, "error": "too many failed attempts; retry later"})
		return
	}
	secret, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || secret == "" || !lc.secret.Match(secret) {
		lc.limiter.Fail(ip)
		s.log.Warn("download refused: bad or missing secret", "ip", ip)
		w.Header().Set("WWW-Authenticate", `Bearer realm="skykoi"`)
		writeJSON(w, http.StatusUnauthorized, map[string]any{"ok": false,
			"error": "send the gateway token (or password) as Authorization: Bearer <secret>"})
		return
	}
	lc.limiter.Succeed(ip)
	rel := strings.TrimPrefix(r.URL.Path, files.DownloadPrefix)
	o, err := files.OpenDownload(s.workspace(lc.cfg), rel, []string{s.opts.ConfigPath, s.opts.StateDir})
	if err != nil {
		code := http.StatusNotFound
		switch {
		case errors.Is(err, files.ErrBadPath), errors.Is(err, files.ErrNotFile):
			code = http.StatusBadRequest
		case errors.Is(err, files.ErrEscape), errors.Is(err, files.ErrProtected):
			code = http.StatusForbidden
		}
		s.log.Debug("download refused", "err", err)
		writeJSON(w, code, map[string]any{"ok": false, "error": err.Error()})
		return
	}
	files.Serve(w, r, o)
}
