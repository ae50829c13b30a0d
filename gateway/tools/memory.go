package tools

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"path/filepath"

	"github.com/skykoi/skykoi/gateway/memory"
)

// Memory is what memory_search and memory_get delegate to (a
// *memory.Store); nil leaves the two tools out.
type Memory interface {
	Search(ctx context.Context, query string, maxResults int, minScore float64) ([]memory.Result, error)
	Get(rel string, from, lines int) (memory.Excerpt, error)
}

func (s *Set) memorySearchTool(ctx context.Context, input json.RawMessage) Result {
	a, err := parseArgs("memory_search", input, "query", "maxResults", "minScore")
	if err != nil {
		return failErr("invalid_arguments", err)
	}
	query, _ := a.str("query", true)
	maxResults := a.integer("maxResults", 1, memory.MaxResultsCap, memory.DefaultMaxResults)
	minScore := 0.0
	if raw, ok := a.get("minScore", false, "a number from 0 to 1"); ok {
		if json.Unmarshal(raw, &minScore) != nil || minScore < 0 || minScore > 1 {
			a.problem("field %q: expected a number from 0 to 1, got %s", "minScore", describe(raw))
		}
	}
	if err := a.err(); err != nil {
		return failErr("invalid_arguments", err)
	}
	res, err := s.memory.Search(ctx, query, int(maxResults), minScore)
	if err != nil {
		return failure("memory_error", "memory_search: %v", err)
	}
	if res == nil {
		res = []memory.Result{} // "results": [] tells the model plainly there was no hit
	}
	out, _ := json.Marshal(map[string]any{"results": res})
	return Result{Text: string(out), Details: map[string]any{"results": len(res)}}
}

// memoryGetTool reads a memory file. The path goes through the same
// resolvePath as read (state directory and config refused, symlinks
// resolved, workspace confinement), and must then still name MEMORY.md or
// memory/*.md in the workspace: memory_get is not a second read tool.
func (s *Set) memoryGetTool(input json.RawMessage) Result {
	a, err := parseArgs("memory_get", input, "path", "from", "lines")
	if err != nil {
		return failErr("invalid_arguments", err)
	}
	path, _ := a.str("path", true)
	from := a.integer("from", 1, math.MaxInt32, 1)
	lines := a.integer("lines", 1, math.MaxInt32, memory.DefaultGetLines)
	if err := a.err(); err != nil {
		return failErr("invalid_arguments", err)
	}
	real, err := s.resolvePath("memory_get", path, s.ws)
	if err != nil {
		return failure(pathErrKind(err), "%v", err)
	}
	rel, err := filepath.Rel(s.ws, real)
	if err != nil || !within(s.ws, real) || !memory.IsMemoryPath(filepath.ToSlash(rel)) {
		return failure("not_memory", "memory_get %s: not a memory file; memory_get reads only MEMORY.md and memory/*.md in the workspace (use read for other files)", path)
	}
	ex, err := s.memory.Get(filepath.ToSlash(rel), int(from), int(lines))
	if err != nil {
		kind := "io_error"
		if errors.Is(err, memory.ErrNotMemory) {
			kind = "not_memory"
		}
		return failure(kind, "memory_get: %v", err)
	}
	out, _ := json.Marshal(ex)
	return Result{Text: string(out), Details: map[string]any{"path": ex.Path, "from": ex.From, "lines": ex.Lines}}
}
