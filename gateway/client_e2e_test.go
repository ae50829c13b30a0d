package gateway

import (
	"context"
	"errors"
	"testing"

	"github.com/skykoi/skykoi/gateway/client"
	"github.com/skykoi/skykoi/gateway/protocol"
)

// TestGoClientAgainstRealServer drives the gateway with the Go client that
// the CLI uses: device-signed connect, a request, events, and the close code
// of a drain.
func TestGoClientAgainstRealServer(t *testing.T) {
	ts := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), patience(t))
	defer cancel()
	key := newDeviceKey(t)
	c, err := client.Dial(ctx, client.Options{URL: ts.url, Token: testToken, DeviceKey: key.priv, Caps: []string{protocol.CapToolEvents}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Hello().Auth.Method != "token" {
		t.Errorf("hello auth %+v", c.Hello().Auth)
	}
	if _, ok := ts.devices.Get(protocol.DeviceIDFromPublicKey(key.pub)); !ok {
		t.Error("the client's device was not verified and remembered")
	}
	var h Health
	if err := c.Request(ctx, "health", nil, &h); err != nil || !h.OK {
		t.Fatalf("health: %v %+v", err, h)
	}
	events, stop := c.Subscribe(16)
	defer stop()
	other, _ := dialConnected(t, ts)
	_ = other
	for ev := range events {
		if ev.Event == protocol.EventPresence {
			break
		}
	}
	var pe *protocol.Error
	if err := c.Request(ctx, "config.get", nil, nil); !errors.As(err, &pe) || pe.Code != protocol.CodeForbidden {
		t.Errorf("config.get without admin: %v", err)
	}
	// Wrong token: the typed error carries details.code.
	_, err = client.Dial(ctx, client.Options{URL: ts.url, Token: "nope"})
	if client.DetailsCode(err) != protocol.AuthTokenMismatch {
		t.Errorf("wrong token: %v", err)
	}
	go ts.stop(t)
	select {
	case <-c.Done():
	case <-ctx.Done():
		t.Fatal("client did not see the drain")
	}
	var ce *client.CloseError
	if !errors.As(c.Err(), &ce) || ce.Code != protocol.CloseServiceRestart {
		t.Errorf("client error %v, want close 1012", c.Err())
	}
}
