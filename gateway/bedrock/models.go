package bedrock

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
)

// ProviderName is the provider part of a model ref.
const ProviderName = "amazon-bedrock"

// maxModelIDLen is the service's limit on the modelId label.
const maxModelIDLen = 2048

// ParseModelRef splits "amazon-bedrock/<modelId>" and returns the model id.
// Everything after the first slash is the id, unchanged: foundation model
// ids, inference profile ids (us.anthropic.claude-opus-4-6-v1) and ARNs
// (which contain slashes and colons) all pass through.
func ParseModelRef(ref string) (string, error) {
	provider, id, ok := strings.Cut(ref, "/")
	if !ok {
		return "", fmt.Errorf("model ref %q: want %s/<modelId>, e.g. %s/us.anthropic.claude-opus-4-6-v1", ref, ProviderName, ProviderName)
	}
	if provider != ProviderName {
		return "", fmt.Errorf("model ref %q: provider %q is not supported; only %s is", ref, provider, ProviderName)
	}
	if id == "" {
		return "", fmt.Errorf("model ref %q: the model id after %s/ is empty", ref, ProviderName)
	}
	if len(id) > maxModelIDLen {
		return "", fmt.Errorf("model ref %q…: the model id is longer than %d characters", ref[:64], maxModelIDLen)
	}
	for _, r := range id {
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == unicode.ReplacementChar {
			return "", fmt.Errorf("model ref %q: the model id contains a space, control or invalid character", ref)
		}
	}
	return id, nil
}

// claudeVersion reads family and version from an Anthropic model id in any
// of its spellings: foundation model id, geo inference profile
// (us./eu./apac./global.…), or an ARN ending in one of those. It knows both
// naming schemes: claude-3-7-sonnet-… and claude-sonnet-4-5-….
func claudeVersion(modelID string) (family string, major, minor int, ok bool) {
	id := strings.ToLower(modelID)
	if i := strings.LastIndex(id, "/"); i >= 0 {
		id = id[i+1:]
	}
	_, rest, found := strings.Cut(id, "anthropic.claude-")
	if !found {
		return "", 0, 0, false
	}
	parts := strings.Split(rest, "-")
	num := func(i int) (int, bool) {
		if i >= len(parts) || len(parts[i]) == 0 || len(parts[i]) > 2 {
			return 0, false // dates (20250219) and v1 are not versions
		}
		n, err := strconv.Atoi(parts[i])
		return n, err == nil
	}
	isFamily := func(s string) bool { return s == "opus" || s == "sonnet" || s == "haiku" }
	if m, isNum := num(0); isNum {
		// claude-3-5-haiku-…: version first, then family.
		major = m
		i := 1
		if n, isNum := num(1); isNum {
			minor, i = n, 2
		}
		if i < len(parts) && isFamily(parts[i]) {
			return parts[i], major, minor, true
		}
		return "", 0, 0, false
	}
	if !isFamily(parts[0]) {
		return "", 0, 0, false
	}
	m, isNum := num(1)
	if !isNum {
		return "", 0, 0, false
	}
	minor, _ = num(2)
	return parts[0], m, minor, true
}

// SupportsPromptCache reports whether cachePoint blocks are accepted for
// modelID. It is deliberately conservative: a cachePoint sent to a model
// without caching makes the whole request fail with a ValidationException,
// while a missing one only costs money. Yes: Claude 3.5 Haiku, 3.7 Sonnet and
// every 4.x and later Claude; Amazon Nova Micro, Lite, Pro and Premier. No:
// Claude 3.5 Sonnet (caching there was a preview only), older Claude,
// application inference profile ARNs (the model behind them is unknown), and
// everything else.
func SupportsPromptCache(modelID string) bool {
	if family, major, minor, ok := claudeVersion(modelID); ok {
		switch {
		case major >= 4:
			return true
		case major == 3 && minor == 7:
			return true
		case major == 3 && minor == 5 && family == "haiku":
			return true
		}
		return false
	}
	id := strings.ToLower(modelID)
	if i := strings.LastIndex(id, "/"); i >= 0 {
		id = id[i+1:]
	}
	for _, m := range []string{"amazon.nova-micro-v", "amazon.nova-lite-v", "amazon.nova-pro-v", "amazon.nova-premier-v"} {
		if strings.Contains(id, m) {
			return true
		}
	}
	return false
}

// supportsThinking reports whether modelID takes Anthropic's extended
// thinking parameter (Claude 3.7 Sonnet and 4.x and later); other models
// reject it, so it is only sent where it is known to work.
func supportsThinking(modelID string) bool {
	_, major, minor, ok := claudeVersion(modelID)
	return ok && (major >= 4 || (major == 3 && minor >= 7))
}

// thinkingBudget returns the reasoning budget in tokens for level, 0 for
// off, or an error for an unknown level. Anthropic's minimum budget is 1024;
// the steps are a factor of four apart so the levels differ noticeably in
// cost and depth.
func thinkingBudget(level string) (int, error) {
	switch level {
	case "", "off":
		return 0, nil
	case "low":
		return 1024, nil
	case "medium":
		return 4096, nil
	case "high":
		return 16384, nil
	}
	return 0, fmt.Errorf("thinking level %q: want off, low, medium or high", level)
}

// DefaultContextWindow is assumed for a model the table in ContextWindow
// does not know (an application inference profile ARN, a new family): the
// smallest window among current Bedrock chat models, so the agent compacts
// early rather than being refused.
const DefaultContextWindow = 128000

// ContextWindow is modelID's context window in tokens, as Bedrock serves it
// by default: every Claude model 200,000 (the 1M-token beta needs a request
// header the provider does not send); Amazon Nova Micro 128,000, Lite and Pro
// 300,000, Premier 1,000,000; Meta Llama 3.1 and later, Mistral Large 2 and
// everything unknown DefaultContextWindow. agents.defaults.contextTokens
// overrides it.
func ContextWindow(modelID string) int {
	if _, _, _, ok := claudeVersion(modelID); ok {
		return 200000
	}
	id := strings.ToLower(modelID)
	if i := strings.LastIndex(id, "/"); i >= 0 {
		id = id[i+1:]
	}
	for _, w := range []struct {
		part   string
		tokens int
	}{
		{"anthropic.claude", 200000},
		{"amazon.nova-micro-v", 128000},
		{"amazon.nova-lite-v", 300000},
		{"amazon.nova-pro-v", 300000},
		{"amazon.nova-premier-v", 1000000},
	} {
		if strings.Contains(id, w.part) {
			return w.tokens
		}
	}
	return DefaultContextWindow
}
