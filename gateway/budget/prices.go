package budget

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/skykoi/skykoi/configgen"
)

// builtinPrice is one row of the price table: a model family, matched as a
// part of the Bedrock model id, and its on-demand prices in US dollars per
// million tokens with the day they were read from the Amazon Bedrock pricing
// page. Cross-region inference profiles (us., eu., global. …) are billed as
// the model itself. Order matters: the first matching part wins, so more
// specific parts come first.
type builtinPrice struct {
	part                                 string
	input, output, cacheRead, cacheWrite float64
	date                                 string
}

// builtinPrices returns the table. It is built per call so nothing outside
// can change it; callers keep the result.
//
// Claude Opus 4.6 is priced as Opus 4.5 (the price Anthropic kept for the
// 4.5 generation); check it against the pricing page and override it with
// usage.prices if it differs. Cache writes are the 5-minute write price;
// Amazon Nova charges no premium for writing its cache, so its cacheWrite is
// the input price.
func builtinPrices() []builtinPrice {
	return []builtinPrice{
		{"anthropic.claude-opus-4-6", 5, 25, 0.5, 6.25, "2026-02-05"},
		{"anthropic.claude-opus-4-5", 5, 25, 0.5, 6.25, "2025-11-24"},
		{"anthropic.claude-opus-4-1", 15, 75, 1.5, 18.75, "2025-08-05"},
		{"anthropic.claude-opus-4", 15, 75, 1.5, 18.75, "2025-05-22"},
		{"anthropic.claude-sonnet-4-5", 3, 15, 0.3, 3.75, "2025-09-29"},
		{"anthropic.claude-sonnet-4", 3, 15, 0.3, 3.75, "2025-05-22"},
		{"anthropic.claude-haiku-4-5", 1, 5, 0.1, 1.25, "2025-10-15"},
		{"anthropic.claude-3-7-sonnet", 3, 15, 0.3, 3.75, "2025-02-24"},
		{"anthropic.claude-3-5-sonnet", 3, 15, 0.3, 3.75, "2024-10-22"},
		{"anthropic.claude-3-5-haiku", 0.8, 4, 0.08, 1, "2024-12-19"},
		{"anthropic.claude-3-haiku", 0.25, 1.25, 0.03, 0.3, "2024-03-13"},
		{"amazon.nova-premier-v", 2.5, 12.5, 0.625, 2.5, "2025-04-30"},
		{"amazon.nova-pro-v", 0.8, 3.2, 0.2, 0.8, "2025-04-07"},
		{"amazon.nova-lite-v", 0.06, 0.24, 0.015, 0.06, "2025-04-07"},
		{"amazon.nova-micro-v", 0.035, 0.14, 0.00875, 0.035, "2025-04-07"},
	}
}

// Price is a model's prices and where they came from.
type Price struct {
	configgen.Price
	Source string `json:"source"` // "built-in" or "usage.prices"
}

// BuiltinPrices lists the price table (for docs and usage.cost).
func BuiltinPrices() []Price {
	var out []Price
	for _, b := range builtinPrices() {
		out = append(out, Price{Price: configgen.Price{Model: b.part, Input: b.input, Output: b.output,
			CacheRead: b.cacheRead, CacheWrite: b.cacheWrite, Date: b.date}, Source: "built-in"})
	}
	return out
}

// modelID is the Bedrock model id of a ref or id: without the provider, and
// for an ARN the part after its last slash.
func modelID(model string) string {
	return strings.TrimPrefix(model, configgen.Provider+"/")
}

// priceSet is the table in force with one config's overrides; lookups are
// cached per model id, lock-free once warm.
type priceSet struct {
	raw       []string // the usage.prices it was built from
	overrides map[string]configgen.Price
	cache     sync.Map // model id → lookup
}

type lookup struct {
	price Price
	ok    bool
}

func newPriceSet(raw []string) *priceSet {
	ps := &priceSet{raw: slices.Clone(raw), overrides: map[string]configgen.Price{}}
	for _, s := range raw {
		// Validated with the config; an entry that no longer parses is
		// skipped rather than trusted.
		if p, err := configgen.ParsePrice(s); err == nil {
			ps.overrides[p.Model] = p
		}
	}
	return ps
}

// lookup returns model's price; ok is false for a model nobody priced.
func (ps *priceSet) lookup(model string) (Price, bool) {
	if v, hit := ps.cache.Load(model); hit {
		l := v.(lookup)
		return l.price, l.ok
	}
	p, ok := ps.find(model)
	ps.cache.Store(model, lookup{p, ok})
	return p, ok
}

func (ps *priceSet) find(model string) (Price, bool) {
	id := modelID(model)
	if p, ok := ps.overrides[id]; ok {
		return Price{Price: p, Source: "usage.prices"}, true
	}
	low := strings.ToLower(id)
	if i := strings.LastIndex(low, "/"); i >= 0 {
		// An application inference profile ARN names no model; a
		// foundation-model ARN ends in the model id.
		low = low[i+1:]
	}
	for _, b := range builtinPrices() {
		if strings.Contains(low, b.part) {
			return Price{Price: configgen.Price{Model: id, Input: b.input, Output: b.output, CacheRead: b.cacheRead,
				CacheWrite: b.cacheWrite, Date: b.date}, Source: "built-in"}, true
		}
	}
	return Price{}, false
}

// Costs are one call's (or a sum's) estimated cost by kind, in US dollars.
type Costs struct {
	Input, Output, CacheRead, CacheWrite float64
}

func (c Costs) Total() float64 { return c.Input + c.Output + c.CacheRead + c.CacheWrite }

// cost prices tokens at p.
func cost(p Price, t Tokens) Costs {
	const perMTok = 1e6
	return Costs{Input: float64(t.Input) * p.Input / perMTok, Output: float64(t.Output) * p.Output / perMTok,
		CacheRead: float64(t.CacheRead) * p.CacheRead / perMTok, CacheWrite: float64(t.CacheWrite) * p.CacheWrite / perMTok}
}

// usd formats an amount for a person: cents, or more digits below a dollar
// so a small cap does not read as $0.00.
func usd(v float64) string {
	if v >= 1 || v == 0 {
		return fmt.Sprintf("$%.2f", v)
	}
	s := strings.TrimRight(fmt.Sprintf("%.4f", v), "0")
	if strings.HasSuffix(s, ".") || len(s[strings.IndexByte(s, '.')+1:]) < 2 {
		return fmt.Sprintf("$%.2f", v)
	}
	return "$" + s
}
