package auth

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/skykoi/skykoi/internal/atomicfile"
)

// MaxDevices caps the remembered devices. Remember rewrites the whole file,
// and the gateway calls it on every connect with a verified device, so the
// file's size is paid on each such connect. A device takes about 600 bytes
// of indented JSON, so 1,000 of them is about 600 KB: far beyond what one
// person's Koi sees (a few browsers, phones and terminals, plus the new key a
// browser makes each time its storage is cleared), and still cheap to write.
const MaxDevices = 1000

// devicesFileVersion is the format of paired.json; a file of another version
// is refused rather than misread and then overwritten.
const devicesFileVersion = 1

// Device is a remembered device: one that proved its identity on connect.
// PublicKey is the raw Ed25519 key in base64url without padding, whatever
// form the client sent. Times are Unix milliseconds.
type Device struct {
	ID           string   `json:"id"`
	PublicKey    string   `json:"publicKey"`
	ClientID     string   `json:"clientId,omitempty"`
	ClientMode   string   `json:"clientMode,omitempty"`
	Platform     string   `json:"platform,omitempty"`
	DeviceFamily string   `json:"deviceFamily,omitempty"`
	DisplayName  string   `json:"displayName,omitempty"`
	Role         string   `json:"role,omitempty"`
	Scopes       []string `json:"scopes,omitempty"`
	FirstSeenMs  int64    `json:"firstSeenMs"`
	LastSeenMs   int64    `json:"lastSeenMs"`
}

type devicesFile struct {
	Version int               `json:"version"`
	Devices map[string]Device `json:"devices"`
}

// DeviceStore is the set of remembered devices, kept in
// <stateDir>/devices/paired.json. It is safe for concurrent use within one
// process; the gateway is the file's only writer.
type DeviceStore struct {
	path string

	mu      sync.Mutex
	devices map[string]Device
}

// OpenDeviceStore loads <stateDir>/devices/paired.json, or starts empty when
// the file does not exist. The devices directory is created (mode 0700) now,
// so a permission problem shows at start-up rather than on the first
// connect. A file that cannot be read or parsed is an error and is left as it
// is: the gateway must not start and then overwrite what a person may want
// to repair.
func OpenDeviceStore(stateDir string) (*DeviceStore, error) {
	dir := filepath.Join(stateDir, "devices")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating device store directory: %w", err)
	}
	// MkdirAll leaves an existing directory's mode alone; device keys and
	// client details are nobody else's business.
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("restricting device store directory: %w", err)
	}
	s := &DeviceStore{path: filepath.Join(dir, "paired.json"), devices: make(map[string]Device)}
	data, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading device store: %w", err)
	}
	var f devicesFile
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("device store %s is corrupt (%v); fix or move it aside and restart", s.path, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("device store %s is corrupt (data after the JSON object); fix or move it aside and restart", s.path)
	}
	if f.Version != devicesFileVersion {
		return nil, fmt.Errorf("device store %s has version %d, this gateway reads version %d; move it aside or upgrade", s.path, f.Version, devicesFileVersion)
	}
	for id, d := range f.Devices {
		if d.ID == "" {
			d.ID = id
		}
		if d.ID != id {
			return nil, fmt.Errorf("device store %s is corrupt: entry %q has id %q; fix or move it aside and restart", s.path, id, d.ID)
		}
		s.devices[id] = d
	}
	return s, nil
}

// Path is the file the store reads and writes.
func (s *DeviceStore) Path() string { return s.path }

// Remember adds d or updates the device with d.ID, keeping the first-seen
// time already on record (or taking LastSeenMs when d has none), and writes
// the file. When the store is over MaxDevices, the least recently seen
// devices other than d are forgotten. If the write fails, nothing changes in
// memory either, so Get and List never show what a restart would lose.
func (s *DeviceStore) Remember(ctx context.Context, d Device) error {
	if d.ID == "" {
		return errors.New("remembering device: id is empty")
	}
	d.Scopes = slices.Clone(d.Scopes)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("remembering device %s: %w", d.ID, err)
	}
	if old, ok := s.devices[d.ID]; ok && old.FirstSeenMs != 0 {
		d.FirstSeenMs = old.FirstSeenMs
	}
	if d.FirstSeenMs == 0 {
		d.FirstSeenMs = d.LastSeenMs
	}
	next := make(map[string]Device, len(s.devices)+1)
	for id, v := range s.devices {
		next[id] = v
	}
	next[d.ID] = d
	evictLeastRecent(next, MaxDevices, d.ID)
	data, err := json.MarshalIndent(devicesFile{Version: devicesFileVersion, Devices: next}, "", "  ")
	if err != nil {
		return fmt.Errorf("remembering device %s: %w", d.ID, err)
	}
	if err := atomicfile.Write(s.path, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("remembering device %s: %w", d.ID, err)
	}
	s.devices = next
	return nil
}

// evictLeastRecent trims m to limit entries, dropping the smallest
// LastSeenMs first (ties by id, so the result does not depend on map order)
// and never keep.
func evictLeastRecent(m map[string]Device, limit int, keep string) {
	if len(m) <= limit {
		return
	}
	victims := make([]Device, 0, len(m))
	for id, d := range m {
		if id != keep {
			victims = append(victims, d)
		}
	}
	slices.SortFunc(victims, func(a, b Device) int {
		return cmp.Or(cmp.Compare(a.LastSeenMs, b.LastSeenMs), cmp.Compare(a.ID, b.ID))
	})
	for _, d := range victims[:len(m)-limit] {
		delete(m, d.ID)
	}
}

// Get returns the remembered device with id.
func (s *DeviceStore) Get(id string) (Device, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.devices[id]
	d.Scopes = slices.Clone(d.Scopes)
	return d, ok
}

// List returns every remembered device, sorted by id.
func (s *DeviceStore) List() []Device {
	s.mu.Lock()
	out := make([]Device, 0, len(s.devices))
	for _, d := range s.devices {
		d.Scopes = slices.Clone(d.Scopes)
		out = append(out, d)
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b Device) int { return cmp.Compare(a.ID, b.ID) })
	return out
}
