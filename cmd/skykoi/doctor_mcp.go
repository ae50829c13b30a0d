package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/skykoi/skykoi/configgen"
	"github.com/skykoi/skykoi/gateway/mcp"
)

// checkMCP starts each configured MCP server once, as the gateway would
// (same environment, less the gateway's secrets; same headers), lists its
// tools and stops it. All at once: each may take up to its
// connectionTimeoutMs. A server that fails is a warning, not a failure: the
// agent still works, without that server's tools.
func (d *doctor) checkMCP(ctx context.Context, cfg configgen.Config) {
	names := slices.Sorted(maps.Keys(cfg.MCP.Servers))
	type result struct {
		st  mcp.Status
		err error
	}
	results := make([]result, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		srv := cfg.MCP.Servers[name]
		if !srv.Enabled {
			continue
		}
		wg.Go(func() {
			pctx, cancel := context.WithTimeout(ctx, time.Duration(srv.ConnectionTimeoutMs)*time.Millisecond+5*time.Second)
			defer cancel()
			ws, err := configgen.ExpandHome(cfg.Agents.Defaults.Workspace)
			if err != nil {
				ws = ""
			}
			st, err := mcp.Probe(pctx, name, srv, mcp.Options{Workspace: func() string { return ws }, Logger: d.log})
			results[i] = result{st, err}
		})
	}
	wg.Wait()
	for i, name := range names {
		check := "MCP server " + name
		srv := cfg.MCP.Servers[name]
		switch r := results[i]; {
		case !srv.Enabled:
			d.add(check, checkOK, "disabled (mcp.servers."+name+".enabled is false)", "")
		case r.err != nil:
			d.add(check, checkWarn, r.err.Error(),
				fmt.Sprintf("fix mcp.servers.%s (the agent runs without its tools meanwhile; the gateway keeps retrying)", name))
		default:
			detail := fmt.Sprintf("%s server answered with %d tools", r.st.Transport, r.st.Tools)
			if r.st.Skipped > 0 {
				detail += fmt.Sprintf(" (%d left out: names Bedrock refuses)", r.st.Skipped)
			}
			d.add(check, checkOK, detail, "")
		}
	}
}
