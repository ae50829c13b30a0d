package configgen

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Price is what one model costs, in US dollars per million tokens, and the
// day those prices were read (prices change; a figure without its date
// cannot be checked).
type Price struct {
	Model      string  `json:"model"` // Bedrock model id, without the provider
	Input      float64 `json:"input"`
	Output     float64 `json:"output"`
	CacheRead  float64 `json:"cacheRead"`
	CacheWrite float64 `json:"cacheWrite"`
	Date       string  `json:"date"` // YYYY-MM-DD
}

// maxPricePerMTok bounds a price so a typo (an extra few zeros) is caught:
// no Bedrock model costs near this per million tokens.
const maxPricePerMTok = 10000

// priceFields are the keys a usage.prices entry must give, each once.
var priceFields = []string{"input", "output", "cacheRead", "cacheWrite", "date"}

// ParsePrice reads one usage.prices entry:
//
//	"<modelId> input=5 output=25 cacheRead=0.5 cacheWrite=6.25 date=2026-12-01"
//
// Every field is required, in any order; the model id may carry the
// "amazon-bedrock/" prefix of a model ref.
func ParsePrice(s string) (Price, error) {
	const example = "\"us.anthropic.claude-opus-4-6-v1 input=5 output=25 cacheRead=0.5 cacheWrite=6.25 date=2026-12-01\""
	f := strings.Fields(s)
	if len(f) == 0 {
		return Price{}, fmt.Errorf("must be a model id and its prices, like %s; got an empty string", example)
	}
	p := Price{Model: strings.TrimPrefix(f[0], Provider+"/")}
	if strings.Contains(p.Model, "=") || !modelIDRe.MatchString(p.Model) {
		return Price{}, fmt.Errorf("must start with a model id (letters, digits and . _ : / -), like %s; got %s", example, quote(f[0]))
	}
	seen := map[string]bool{}
	for _, kv := range f[1:] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !contains(priceFields, k) {
			return Price{}, fmt.Errorf("%s: %s is not one of %s=…, like %s", quote(p.Model), quote(kv), strings.Join(priceFields, "=…, "), example)
		}
		if seen[k] {
			return Price{}, fmt.Errorf("%s: %s is given twice", quote(p.Model), k)
		}
		seen[k] = true
		if k == "date" {
			if _, err := time.Parse(time.DateOnly, v); err != nil {
				return Price{}, fmt.Errorf("%s: date must be the day the prices were read, as YYYY-MM-DD; got %s", quote(p.Model), quote(v))
			}
			p.Date = v
			continue
		}
		n, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(n) || n < 0 || n > maxPricePerMTok {
			return Price{}, fmt.Errorf("%s: %s must be US dollars per million tokens, from 0 to %d; got %s", quote(p.Model), k, maxPricePerMTok, quote(v))
		}
		switch k {
		case "input":
			p.Input = n
		case "output":
			p.Output = n
		case "cacheRead":
			p.CacheRead = n
		case "cacheWrite":
			p.CacheWrite = n
		}
	}
	for _, k := range priceFields {
		if !seen[k] {
			return Price{}, fmt.Errorf("%s: %s=… is missing (every price and its date are required), like %s", quote(p.Model), k, example)
		}
	}
	return p, nil
}
