package gateway

import (
	"github.com/skykoi/skykoi/gateway/protocol"
)

// mSkillsStatus lists the workspace's skills, the malformed ones with their
// problems (OpenClaw's skills.status, for the one agent a Koi has).
func (s *Server) mSkillsStatus(cl *call) (any, *protocol.Error) {
	var p struct {
		AgentID string `json:"agentId"`
	}
	if e := cl.params(&p); e != nil {
		return nil, e
	}
	if e := checkAgentID(p.AgentID); e != nil {
		return nil, e
	}
	return s.skills.Status(s.workspace(s.cfg())), nil
}
