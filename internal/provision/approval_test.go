package provision_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/provision"
	pt "github.com/muster-iot/muster/internal/provision/provisiontest"
	"github.com/muster-iot/muster/internal/store"
)

func TestManualApproval(t *testing.T) {
	n := pt.Start(t)
	tmpl := pt.BasicTemplate(provision.DefaultTemplate)
	tmpl.Approval = provision.ApprovalManual
	n.PutTemplate(t, tmpl)
	dev := n.Manufacture(t)
	csr := pt.MakeCSR(t, pt.NewKey(t), nil)

	a := n.ProvisionJSON(t, dev.Birth.TLS(), provision.PathProvision, csr, nil)
	if a.Status != http.StatusAccepted || a.Header.Get("Retry-After") != "2" {
		t.Fatalf("first attempt: %d %s Retry-After %q, want 202 with Retry-After", a.Status, a.Body, a.Header.Get("Retry-After"))
	}
	var pending provision.JSONError
	a.JSON(t, &pending)
	if d, _ := n.Store.GetDevice(context.Background(), dev.ID); d.Lifecycle.State != fleet.StatePending {
		t.Errorf("device waiting for approval is %s, want pending", d.Lifecycle.State)
	}
	// A retry is still pending; a different CSR conflicts.
	if a := n.ProvisionJSON(t, dev.Birth.TLS(), provision.PathProvision, csr, nil); a.Status != http.StatusAccepted {
		t.Errorf("retry while pending: %d", a.Status)
	}
	if a := n.ProvisionJSON(t, dev.Birth.TLS(), provision.PathProvision, pt.MakeCSR(t, pt.NewKey(t), nil), nil); a.Status != http.StatusConflict {
		t.Errorf("different CSR while pending: %d %s, want 409", a.Status, a.Body)
	}
	list, err := n.Store.PendingApprovals(context.Background())
	if err != nil || len(list) != 1 || list[0].ID != pending.RequestID {
		t.Fatalf("pending approvals = %+v, %v (want %s)", list, err, pending.RequestID)
	}
	if _, err := n.Store.DecideApproval(context.Background(), pending.RequestID, true, "checked the site", "operator/alice"); err != nil {
		t.Fatal(err)
	}
	resp, _ := n.Issued(t, n.ProvisionJSON(t, dev.Birth.TLS(), provision.PathProvision, csr, nil))
	if resp.DeviceID != dev.ID {
		t.Errorf("approved device got id %s", resp.DeviceID)
	}
	evs := n.Events(t, dev.ID)
	for _, typ := range []string{store.EventProvisioningPending, store.EventProvisioningApproved, provision.EventProvisioned} {
		if !pt.HasEvent(evs, typ, "") {
			t.Errorf("history lacks %s", typ)
		}
	}

	// Rejection moves the device to rejected and refuses its retries.
	dev2 := n.Manufacture(t)
	csr2 := pt.MakeCSR(t, pt.NewKey(t), nil)
	n.ProvisionJSON(t, dev2.Birth.TLS(), provision.PathProvision, csr2, nil).JSON(t, &pending)
	if _, err := n.Store.DecideApproval(context.Background(), pending.RequestID, false, "unknown site", "operator/alice"); err != nil {
		t.Fatal(err)
	}
	if a := n.ProvisionJSON(t, dev2.Birth.TLS(), provision.PathProvision, csr2, nil); a.Status != http.StatusForbidden {
		t.Errorf("retry after rejection: %d", a.Status)
	}
	if d, _ := n.Store.GetDevice(context.Background(), dev2.ID); d.Lifecycle.State != fleet.StateRejected {
		t.Errorf("rejected device is %s", d.Lifecycle.State)
	}
}

func TestHook(t *testing.T) {
	var mu sync.Mutex
	var seen provision.HookRequest
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req provision.HookRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		mu.Lock()
		seen = req
		mu.Unlock()
		switch req.Parameters["site"] {
		case "deny":
			_ = json.NewEncoder(w).Encode(provision.HookResponse{Allow: false, Reason: "site is closed"})
		case "slow":
			time.Sleep(300 * time.Millisecond)
			_ = json.NewEncoder(w).Encode(provision.HookResponse{Allow: true})
		case "broken":
			http.Error(w, "boom", http.StatusInternalServerError)
		default:
			_ = json.NewEncoder(w).Encode(provision.HookResponse{Allow: true, ParameterOverrides: map[string]any{"tier": "pro"}})
		}
	}))
	defer hook.Close()
	n := pt.Start(t)
	tmpl := pt.BasicTemplate(provision.DefaultTemplate)
	tmpl.Hook = &provision.Hook{URL: hook.URL, Timeout: provision.Duration(100 * time.Millisecond)}
	tmpl.Approval = provision.ApprovalHook
	n.PutTemplate(t, tmpl)

	for _, tc := range []struct {
		site   string
		status int
		reason string
	}{
		{"lyon", http.StatusOK, ""},
		{"deny", http.StatusForbidden, "site is closed"},
		{"slow", http.StatusForbidden, "deadline exceeded"},
		{"broken", http.StatusForbidden, "500"},
	} {
		t.Run(tc.site, func(t *testing.T) {
			dev := n.Manufacture(t)
			a := n.ProvisionJSON(t, dev.Birth.TLS(), provision.PathProvision, pt.MakeCSR(t, pt.NewKey(t), nil), map[string]any{"parameters": map[string]any{"site": tc.site}})
			if a.Status != tc.status {
				t.Fatalf("answer %d %s, want %d", a.Status, a.Body, tc.status)
			}
			if tc.status == http.StatusOK {
				resp, _ := n.Issued(t, a)
				if resp.Configuration.Attributes["tier"] != "pro" {
					t.Errorf("hook override not applied: %+v", resp.Configuration)
				}
				mu.Lock()
				defer mu.Unlock()
				if seen.Device.ID != dev.ID || seen.BirthCertificate == "" || seen.Template.Name != tmpl.Name || seen.Template.Version < 1 {
					t.Errorf("hook saw %+v", seen)
				}
				return
			}
			if !pt.HasEvent(n.Events(t, dev.ID), provision.EventRefused, tc.reason) {
				t.Errorf("history lacks the hook's verdict %q", tc.reason)
			}
		})
	}
}

func TestRetryAfterIsWholeSeconds(t *testing.T) {
	h := http.Header{}
	provision.SetRetryAfter(h, 1500*time.Millisecond)
	if got, _ := strconv.Atoi(h.Get("Retry-After")); got != 2 {
		t.Errorf("Retry-After for 1.5s = %q", h.Get("Retry-After"))
	}
}
