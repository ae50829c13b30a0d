package auth

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
)

func testDevice(id string, lastSeen int64) Device {
	return Device{
		ID:           id,
		PublicKey:    "key-" + id,
		ClientID:     "openclaw-control-ui",
		ClientMode:   "webchat",
		Platform:     "macos",
		DeviceFamily: "desktop",
		DisplayName:  "Laptop " + id,
		Role:         "operator",
		Scopes:       []string{"operator.read", "operator.write"},
		FirstSeenMs:  lastSeen,
		LastSeenMs:   lastSeen,
	}
}

func openStore(t *testing.T, dir string) *DeviceStore {
	t.Helper()
	s, err := OpenDeviceStore(dir)
	if err != nil {
		t.Fatalf("OpenDeviceStore: %v", err)
	}
	return s
}

func TestDeviceStoreRoundTrip(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s := openStore(t, dir)
	if got := s.List(); len(got) != 0 {
		t.Fatalf("new store lists %v, want nothing", got)
	}
	b, a := testDevice("bbb", 200), testDevice("aaa", 100)
	a.Scopes = nil
	for _, d := range []Device{b, a} {
		if err := s.Remember(ctx, d); err != nil {
			t.Fatalf("Remember(%s): %v", d.ID, err)
		}
	}
	want := []Device{a, b}
	if got := s.List(); !reflect.DeepEqual(got, want) {
		t.Fatalf("List before reopen\n got %+v\nwant %+v", got, want)
	}
	r := openStore(t, dir)
	if got := r.List(); !reflect.DeepEqual(got, want) {
		t.Fatalf("List after reopen\n got %+v\nwant %+v", got, want)
	}
	got, ok := r.Get("bbb")
	if !ok || !reflect.DeepEqual(got, b) {
		t.Fatalf("Get(bbb) = %+v, %v; want %+v", got, ok, b)
	}
	if _, ok := r.Get("ccc"); ok {
		t.Fatalf("Get(ccc) found a device never remembered")
	}
	// Callers get copies: changing one must not change the store.
	got.Scopes[0] = "operator.admin"
	if again, _ := r.Get("bbb"); again.Scopes[0] != "operator.read" {
		t.Fatalf("mutating a Get result changed the store: %v", again.Scopes)
	}
	if r.Path() != filepath.Join(dir, "devices", "paired.json") {
		t.Fatalf("Path = %s", r.Path())
	}
}

func TestDeviceStoreUpsert(t *testing.T) {
	tests := []struct {
		name          string
		first, second Device
		wantFirstSeen int64
	}{
		{"keeps first seen", testDevice("d", 100), func() Device { d := testDevice("d", 500); d.FirstSeenMs = 400; return d }(), 100},
		{"zero first seen keeps record", testDevice("d", 100), func() Device { d := testDevice("d", 500); d.FirstSeenMs = 0; return d }(), 100},
		{"new device without first seen takes last seen", func() Device { d := testDevice("d", 100); d.FirstSeenMs = 0; return d }(), testDevice("d", 500), 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openStore(t, dir)
			ctx := context.Background()
			if err := s.Remember(ctx, tt.first); err != nil {
				t.Fatal(err)
			}
			tt.second.Platform = "linux"
			if err := s.Remember(ctx, tt.second); err != nil {
				t.Fatal(err)
			}
			for _, st := range []*DeviceStore{s, openStore(t, dir)} {
				got, _ := st.Get("d")
				if got.FirstSeenMs != tt.wantFirstSeen || got.LastSeenMs != tt.second.LastSeenMs || got.Platform != "linux" {
					t.Fatalf("after upsert: first %d last %d platform %q; want first %d last %d platform linux",
						got.FirstSeenMs, got.LastSeenMs, got.Platform, tt.wantFirstSeen, tt.second.LastSeenMs)
				}
				if n := len(st.List()); n != 1 {
					t.Fatalf("upsert left %d devices, want 1", n)
				}
			}
		})
	}
}

func TestDeviceStoreModes(t *testing.T) {
	dir := t.TempDir()
	// A pre-existing, too-open devices directory gets tightened.
	if err := os.Mkdir(filepath.Join(dir, "devices"), 0o755); err != nil {
		t.Fatal(err)
	}
	s := openStore(t, dir)
	if err := s.Remember(context.Background(), testDevice("d", 1)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path string
		want os.FileMode
	}{
		{filepath.Join(dir, "devices"), 0o700},
		{filepath.Join(dir, "devices", "paired.json"), 0o600},
	} {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != c.want {
			t.Errorf("%s mode %o, want %o", c.path, got, c.want)
		}
	}
	// No temp files left behind.
	entries, err := os.ReadDir(filepath.Join(dir, "devices"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("devices dir holds %d entries, want only paired.json", len(entries))
	}
}

func TestDeviceStoreNewStateDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	s := openStore(t, dir)
	if err := s.Remember(context.Background(), testDevice("d", 1)); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o700 {
		t.Errorf("created state dir mode %o, want 700", got)
	}
}

func TestDeviceStoreCorrupt(t *testing.T) {
	tests := []struct {
		name, content, wantMsg string
	}{
		{"not json", "{\"version\":1,\"devices\":{", "corrupt"},
		{"array", "[]", "corrupt"},
		{"wrong field type", `{"version":1,"devices":{"d":{"id":"d","lastSeenMs":"yesterday"}}}`, "corrupt"},
		{"trailing data", `{"version":1,"devices":{}} {}`, "corrupt"},
		{"id disagrees with key", `{"version":1,"devices":{"a":{"id":"b"}}}`, "corrupt"},
		{"unknown version", `{"version":2,"devices":{}}`, "version 2"},
		{"missing version", `{"devices":{}}`, "version 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "devices", "paired.json")
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			before, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			s, err := OpenDeviceStore(dir)
			if err == nil {
				t.Fatalf("OpenDeviceStore accepted %q (store %v)", tt.content, s.List())
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q should name %s and say %q", err, path, tt.wantMsg)
			}
			after, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if string(after) != tt.content || !os.SameFile(before, fi) || !fi.ModTime().Equal(before.ModTime()) {
				t.Errorf("corrupt file was modified: now %q", after)
			}
		})
	}
}

func TestDeviceStoreEntryWithoutID(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "devices", "paired.json")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(`{"version":1,"devices":{"d":{"publicKey":"k","lastSeenMs":5}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	s := openStore(t, dir)
	if got, ok := s.Get("d"); !ok || got.ID != "d" || got.LastSeenMs != 5 {
		t.Fatalf("Get(d) = %+v, %v; want the entry with its id filled from the key", got, ok)
	}
}

func TestDeviceStoreCap(t *testing.T) {
	dir := t.TempDir()
	// Start from a full file written directly: a thousand fsynced Remembers
	// would only make the test slow.
	full := devicesFile{Version: devicesFileVersion, Devices: map[string]Device{}}
	for i := range MaxDevices {
		id := fmt.Sprintf("dev%04d", i)
		full.Devices[id] = testDevice(id, int64(1000+i))
	}
	data, err := json.Marshal(full)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "devices", "paired.json")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	s := openStore(t, dir)
	ctx := context.Background()
	// dev0000 was seen least recently; seeing it again saves it.
	if err := s.Remember(ctx, testDevice("dev0000", 9000)); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := s.Remember(ctx, testDevice(fmt.Sprintf("new%d", i), int64(9001+i))); err != nil {
			t.Fatal(err)
		}
	}
	// A device remembered with a stale time is still kept: it just connected.
	if err := s.Remember(ctx, testDevice("stale", 1)); err != nil {
		t.Fatal(err)
	}
	for _, st := range []*DeviceStore{s, openStore(t, dir)} {
		if n := len(st.List()); n != MaxDevices {
			t.Fatalf("%d devices, want the cap %d", n, MaxDevices)
		}
		for id, want := range map[string]bool{
			"dev0000": true, "new0": true, "new1": true, "new2": true, "stale": true,
			"dev0001": false, "dev0002": false, "dev0003": false, "dev0004": false,
			"dev0005": true, "dev0999": true,
		} {
			if _, ok := st.Get(id); ok != want {
				t.Errorf("Get(%s) present = %v, want %v", id, ok, want)
			}
		}
	}
}

func TestDeviceStoreRememberErrors(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	if err := s.Remember(context.Background(), Device{}); err == nil {
		t.Errorf("Remember accepted a device without an id")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Remember(ctx, testDevice("d", 1)); err == nil {
		t.Errorf("Remember with a cancelled context succeeded")
	}
	if _, err := os.Stat(filepath.Join(dir, "devices", "paired.json")); !os.IsNotExist(err) {
		t.Errorf("a failed Remember wrote the file (stat: %v)", err)
	}
	// A write that fails leaves memory as the disk is.
	if err := os.RemoveAll(filepath.Join(dir, "devices")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "devices"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Remember(context.Background(), testDevice("d", 1)); err == nil {
		t.Fatalf("Remember succeeded with its directory replaced by a file")
	}
	if _, ok := s.Get("d"); ok {
		t.Errorf("a device whose write failed is listed")
	}
}

func TestDeviceStoreConcurrent(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	const workers, each = 4, 5
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				if err := s.Remember(context.Background(), testDevice(fmt.Sprintf("w%d-%d", w, i), int64(i))); err != nil {
					errs <- err
				}
				s.List()
				s.Get("w0-0")
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := len(openStore(t, dir).List()); n != workers*each {
		t.Errorf("after concurrent Remembers the file holds %d devices, want %d", n, workers*each)
	}
}
