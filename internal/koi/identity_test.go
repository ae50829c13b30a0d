package koi_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/skykoi/skykoi/internal/koi"
	"github.com/skykoi/skykoi/internal/koi/ec2test"
)

func TestInstanceIdentity(t *testing.T) {
	md := ec2test.NewIMDS(koiID, "ap-southeast-2")
	defer md.Close()
	id, region, onEC2, err := koi.InstanceIdentity(context.Background(), md.URL())
	if err != nil || id != koiID || region != "ap-southeast-2" || !onEC2 {
		t.Fatalf("InstanceIdentity = %q, %q, %v, %v", id, region, onEC2, err)
	}
	reqs := md.Requests()
	if len(reqs) == 0 || reqs[0].Method != http.MethodPut || reqs[0].Path != "/latest/api/token" {
		t.Fatalf("the first request was not the IMDSv2 token: %+v", reqs)
	}
	for _, r := range reqs {
		if r.Status != http.StatusOK {
			t.Errorf("%s %s answered %d (token not sent?)", r.Method, r.Path, r.Status)
		}
	}
}

func TestInstanceIdentityOffEC2(t *testing.T) {
	// A closed port: nothing answers, as at 169.254.169.254 off EC2.
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	start := time.Now()
	id, _, onEC2, err := koi.InstanceIdentity(context.Background(), closed.URL)
	if onEC2 || id != "" || err == nil {
		t.Fatalf("off EC2: %q, %v, %v", id, onEC2, err)
	}
	if d := time.Since(start); d > 2*koi.IdentityTimeout {
		t.Errorf("took %s to learn there is no metadata service", d)
	}
}

func TestInstanceIdentityTimeout(t *testing.T) {
	// Something that accepts connections and never answers, like a
	// firewall that drops instead of refusing.
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-release }))
	defer hang.Close()
	defer close(release)
	start := time.Now()
	_, _, onEC2, err := koi.InstanceIdentity(context.Background(), hang.URL)
	if onEC2 || err == nil {
		t.Fatalf("silent service: %v, %v", onEC2, err)
	}
	if d := time.Since(start); d > 3*koi.IdentityTimeout {
		t.Errorf("took %s", d)
	}
}

func TestInstanceIdentityRefusesIMDSv1(t *testing.T) {
	// A metadata service that only knows v1: no token endpoint, answers
	// reads without one. The SDK must not fall back to it.
	v1 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/latest/api/token" {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		w.Write([]byte(koiID))
	}))
	defer v1.Close()
	_, _, onEC2, err := koi.InstanceIdentity(context.Background(), v1.URL)
	if err == nil || !onEC2 {
		t.Fatalf("IMDSv1-only service: onEC2 %v, err %v", onEC2, err)
	}
}
