package api

import (
	"context"
	"fmt"

	"github.com/muster-iot/muster/internal/store"
)

// template stores a fresh provisioning template and returns its name.
func (h *harness) template() string {
	name := fmt.Sprintf("tmpl-%d", h.serial.Add(1))
	if _, err := h.st.PutTemplate(context.Background(), name, []byte(`{"name":"`+name+`"}`), true, "test/setup"); err != nil {
		h.t.Fatal(err)
	}
	return name
}

// pendingRequest queues a provisioning request for approval and returns
// its id.
func (h *harness) pendingRequest() string {
	d := h.newDevice(factory1)
	q := store.ProvisioningRequest{ID: fmt.Sprintf("prq_test%d", h.serial.Add(1)), Requester: "birth:" + d.ID, CSRSHA256: d.ID,
		DeviceID: d.ID, Kind: store.RequestProvision, Template: "default", TemplateVersion: 1, Status: store.RequestPending}
	if _, err := h.st.CommitProvisioning(context.Background(), &store.ProvisioningCommit{Request: q, Actor: "test/setup"}); err != nil {
		h.t.Fatal(err)
	}
	return q.ID
}
