package web

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/skykoi/skykoi/configgen"
)

// Options is tools.web, resolved: what tools.New needs to offer web_fetch
// and web_search.
type Options struct {
	FetchEnabled  bool
	Fetch         FetchOptions
	SearchEnabled bool
	Search        SearchOptions
}

// maxKeyFile bounds what is read of tools.web.search.apiKeyFile: a key is
// a few dozen characters, and a wrong path to a big file should not be
// read whole.
const maxKeyFile = 4096

// FromConfig resolves tools.web. getenv is os.Getenv outside tests. The key comes from BRAVE_API_KEY, else the
// file; a file that cannot be read leaves search without a key and says
// why (in SearchOptions.KeyProblem, never with the key), rather than
// failing every tool.
func FromConfig(c configgen.Web, getenv func(string) string) (Options, error) {
	g, err := NewGuard(c.AllowPrivate)
	if err != nil {
		return Options{}, err
	}
	o := Options{
		FetchEnabled: c.Fetch.Enabled,
		Fetch: FetchOptions{MaxChars: c.Fetch.MaxChars, MaxCharsCap: c.Fetch.MaxCharsCap,
			MaxResponseBytes: int64(c.Fetch.MaxResponseBytes), Timeout: time.Duration(c.Fetch.TimeoutSeconds) * time.Second,
			MaxRedirects: c.Fetch.MaxRedirects, Readability: c.Fetch.Readability, Guard: g},
		SearchEnabled: c.Search.Enabled,
		Search: SearchOptions{BaseURL: c.Search.BaseURL, MaxResults: c.Search.MaxResults,
			Timeout: time.Duration(c.Search.TimeoutSeconds) * time.Second},
	}
	if getenv == nil {
		getenv = os.Getenv
	}
	if k := strings.TrimSpace(getenv(configgen.EnvBraveAPIKey)); k != "" {
		o.Search.APIKey = k
		return o, nil
	}
	if p := c.Search.APIKeyFile; p != "" {
		k, err := readKeyFile(p)
		if err != nil {
			o.Search.KeyProblem = err.Error()
		} else {
			o.Search.APIKey = k
		}
	}
	return o, nil
}

func readKeyFile(p string) (string, error) {
	p, err := configgen.ExpandHome(p)
	if err != nil {
		return "", fmt.Errorf("tools.web.search.apiKeyFile: %w", err)
	}
	f, err := os.Open(p)
	if err != nil {
		return "", fmt.Errorf("tools.web.search.apiKeyFile: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return "", fmt.Errorf("tools.web.search.apiKeyFile: reading %s: %w", p, err)
	}
	if len(b) > maxKeyFile {
		return "", fmt.Errorf("tools.web.search.apiKeyFile %s is over %d bytes; it should hold only the key", p, maxKeyFile)
	}
	k := strings.TrimSpace(string(b))
	if k == "" || strings.ContainsAny(k, "\r\n\t ") {
		return "", fmt.Errorf("tools.web.search.apiKeyFile %s must hold the key alone on one line", p)
	}
	return k, nil
}
