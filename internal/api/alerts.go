package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/muster-iot/muster/internal/alert"
	"github.com/muster-iot/muster/internal/detect"
	"github.com/muster-iot/muster/internal/store"
)

// Permissions of behaviour detection (docs/api-contract.md).
const (
	PermAlertsRead     Permission = "alerts:read"
	PermAlertsManage   Permission = "alerts:manage"
	PermDetectManage   Permission = "detect:manage"
	PermWebhooksManage Permission = "webhooks:manage"
)

// detectPermissions grants this feature's permissions to role r.
func detectPermissions(r Role) []Permission {
	switch r {
	case RoleAdmin:
		return []Permission{PermAlertsRead, PermAlertsManage, PermDetectManage, PermWebhooksManage}
	case RoleOperator:
		return []Permission{PermAlertsRead, PermAlertsManage, PermDetectManage}
	case RoleAuditor:
		return []Permission{PermAlertsRead}
	}
	return nil
}

// DetectStore is what the detection routes read and write;
// *store.Store implements it. A Store without it answers them with 503.
type DetectStore interface {
	alert.Store
	ListAlerts(ctx context.Context, f store.AlertFilter, cursor string, limit int) ([]store.Alert, string, error)
	DetectRules(ctx context.Context) ([]store.DetectRule, error)
	SaveDetectRules(ctx context.Context, rules []store.DetectRule, actor string) error
	DeleteDetectRule(ctx context.Context, id, actor string) error
	IntelFeeds(ctx context.Context) ([]store.IntelFeed, error)
	IntelIndicators(ctx context.Context, feed string) ([]store.IntelIndicator, error)
	ReplaceIntelFeed(ctx context.Context, f store.IntelFeed, inds []store.IntelIndicator, actor string) (*store.IntelFeed, error)
	DeleteIntelFeed(ctx context.Context, name, actor string) error
	CreateIncident(ctx context.Context, title string, alertIDs []string, actor string) (*store.Incident, error)
	UpdateIncident(ctx context.Context, id string, alertIDs []string, note, state, actor string) (*store.Incident, error)
	GetIncident(ctx context.Context, id string) (*store.Incident, error)
	ListIncidents(ctx context.Context, state string, limit int) ([]store.Incident, error)
	CreateWebhook(ctx context.Context, w *store.Webhook, actor string) error
	Webhooks(ctx context.Context) ([]store.Webhook, error)
	DeleteWebhook(ctx context.Context, id, actor string) error
	GetWebhook(ctx context.Context, id string) (*store.Webhook, error)
	Deliveries(ctx context.Context, webhookID string, limit int) ([]store.Delivery, error)
}

var _ DetectStore = (*store.Store)(nil)

// AlertManager changes alerts and applies mitigations; *alert.Manager
// implements it. Without one, New builds one on the store.
type AlertManager interface {
	Acknowledge(ctx context.Context, id, actor string) (*store.Alert, error)
	Resolve(ctx context.Context, id, actor, resolution string) (*store.Alert, error)
	Apply(ctx context.Context, alertID string, action detect.Action, actor string, auto bool) (*store.AlertAction, error)
	Revert(ctx context.Context, actionID, actor, reason string) (*store.AlertAction, error)
	Hub() *alert.Hub
}

// Detector is the node's behaviour detector: the API asks it to reload
// rules and intelligence after a change, and reads its baselines. Without
// one, changes still reach every node's detector within its poll interval.
type Detector interface {
	Reload(ctx context.Context) error
	DeviceBaselines(id string) (bs []detect.Baseline, learning, observed bool)
	CohortBaselines(model string) []detect.Baseline
	LearningSamples() int
}

// AlertDetail is an alert with the actions taken on it.
type AlertDetail struct {
	store.Alert
	ActionsTaken []store.AlertAction `json:"actionsTaken"`
}

// AlertList is a page of alerts.
type AlertList struct {
	Items      []store.Alert `json:"items"`
	NextCursor string        `json:"nextCursor"`
}

// AcknowledgeRequest is the body of POST /v1/alerts/{id}/acknowledge: an
// empty object.
type AcknowledgeRequest struct{}

// RevertRequest is the body of POST /v1/alert-actions/{id}/revert.
type RevertRequest struct {
	// Reason goes into the device's history with the revert.
	Reason string `json:"reason,omitempty"`
}

// ResolveRequest is the body of POST /v1/alerts/{id}/resolve.
type ResolveRequest struct {
	Resolution string `json:"resolution,omitempty"`
}

// MitigateRequest is the body of POST /v1/alerts/{id}/actions.
type MitigateRequest struct {
	// Action is quarantine, suspend, revoke, rotate or group:NAME.
	Action string `json:"action"`
}

// detectRoutes are the routes of behaviour detection (see features.go).
func detectRoutes() []route {
	str := map[string]any{"type": "string"}
	sev := map[string]any{"type": "string", "enum": []string{"low", "medium", "high", "critical"}}
	limit := queryParam{name: "limit", desc: "page size", schema: map[string]any{"type": "integer", "minimum": 1, "maximum": maxPageSize, "default": defaultPageSize}}
	return []route{
		{name: "listAlerts", method: "GET", pattern: "/v1/alerts", perm: PermAlertsRead, status: http.StatusOK,
			summary: "List alerts, newest first", endpoint: noBody((*Server).listAlerts),
			query: []queryParam{
				{name: "state", desc: "open, acknowledged or resolved", schema: map[string]any{"type": "string", "enum": []string{"open", "acknowledged", "resolved"}}},
				{name: "device", desc: "device id", schema: str}, {name: "rule", desc: "rule id", schema: str},
				{name: "severity", desc: "exact severity", schema: sev}, limit,
				{name: "cursor", desc: "nextCursor of the previous page", schema: str},
			}},
		{name: "streamAlerts", method: "GET", pattern: "/v1/alerts/stream", perm: PermAlertsRead, status: http.StatusOK,
			summary: "Alert events as they happen on this node (server-sent events)", endpoint: noBody((*Server).streamAlerts),
			query: []queryParam{
				{name: "severity", desc: "lowest severity to send", schema: sev},
				{name: "for", desc: "end the stream after this long (Go duration); default never", schema: str},
			}},
		{name: "getAlert", method: "GET", pattern: "/v1/alerts/{id}", perm: PermAlertsRead, status: http.StatusOK,
			summary: "An alert with its evidence and the actions taken", endpoint: noBody((*Server).getAlert)},
		{name: "acknowledgeAlert", method: "POST", pattern: "/v1/alerts/{id}/acknowledge", perm: PermAlertsManage, status: http.StatusOK,
			summary: "Acknowledge an open alert", endpoint: withBody((*Server).acknowledgeAlert)},
		{name: "resolveAlert", method: "POST", pattern: "/v1/alerts/{id}/resolve", perm: PermAlertsManage, status: http.StatusOK,
			summary: "Resolve an alert", endpoint: withBody((*Server).resolveAlert)},
		{name: "mitigateAlert", method: "POST", pattern: "/v1/alerts/{id}/actions", perm: PermAlertsManage, status: http.StatusCreated,
			summary: "Apply a mitigation to the alert's device (quarantine, suspend, revoke, rotate, group:NAME)", endpoint: withBody((*Server).mitigateAlert)},
		{name: "revertAlertAction", method: "POST", pattern: "/v1/alert-actions/{id}/revert", perm: PermAlertsManage, status: http.StatusOK,
			summary: "Undo a mitigation (un-quarantine, un-suspend, leave the group)", endpoint: withBody((*Server).revertAlertAction)},

		{name: "listDetectRules", method: "GET", pattern: "/v1/detect/rules", perm: PermAlertsRead, status: http.StatusOK,
			summary: "The detection rules", endpoint: noBody((*Server).listDetectRules)},
		{name: "putDetectRule", method: "PUT", pattern: "/v1/detect/rules/{id}", perm: PermDetectManage, status: http.StatusOK,
			summary: "Create or replace a detection rule", endpoint: withBody((*Server).putDetectRule)},
		{name: "deleteDetectRule", method: "DELETE", pattern: "/v1/detect/rules/{id}", perm: PermDetectManage, status: http.StatusNoContent,
			summary: "Delete a detection rule", endpoint: noContent((*Server).deleteDetectRule)},
		{name: "deviceBaselines", method: "GET", pattern: "/v1/devices/{id}/baselines", perm: PermAlertsRead, status: http.StatusOK,
			summary: "The baselines this node learned for a device", endpoint: noBody((*Server).deviceBaselines)},

		{name: "listIntelFeeds", method: "GET", pattern: "/v1/intel/feeds", perm: PermAlertsRead, status: http.StatusOK,
			summary: "Threat-intelligence feeds", endpoint: noBody((*Server).listIntelFeeds)},
		{name: "importIntelFeed", method: "PUT", pattern: "/v1/intel/feeds/{name}", perm: PermDetectManage, status: http.StatusOK, limit: intelBodyLimit,
			summary: "Import a feed (IP/CIDR/domain list or STIX 2.1 bundle), replacing its indicators atomically", endpoint: withBody((*Server).importIntelFeed)},
		{name: "getIntelFeed", method: "GET", pattern: "/v1/intel/feeds/{name}", perm: PermAlertsRead, status: http.StatusOK,
			summary: "A feed and its indicators", endpoint: noBody((*Server).getIntelFeed)},
		{name: "deleteIntelFeed", method: "DELETE", pattern: "/v1/intel/feeds/{name}", perm: PermDetectManage, status: http.StatusNoContent,
			summary: "Delete a feed", endpoint: noContent((*Server).deleteIntelFeed)},

		{name: "createIncident", method: "POST", pattern: "/v1/incidents", perm: PermAlertsManage, status: http.StatusCreated,
			summary: "Open an incident linking alerts", endpoint: withBody((*Server).createIncident)},
		{name: "listIncidents", method: "GET", pattern: "/v1/incidents", perm: PermAlertsRead, status: http.StatusOK,
			summary: "Incidents, newest first", endpoint: noBody((*Server).listIncidents),
			query: []queryParam{{name: "state", desc: "open or closed", schema: map[string]any{"type": "string", "enum": []string{"open", "closed"}}}, limit}},
		{name: "getIncident", method: "GET", pattern: "/v1/incidents/{id}", perm: PermAlertsRead, status: http.StatusOK, markdown: true,
			summary: "An incident's report: its alerts, the actions taken and its notes (the export)", endpoint: noBody((*Server).getIncident)},
		{name: "updateIncident", method: "PATCH", pattern: "/v1/incidents/{id}", perm: PermAlertsManage, status: http.StatusOK,
			summary: "Link alerts, add a note, close or reopen", endpoint: withBody((*Server).updateIncident)},

		{name: "createWebhook", method: "POST", pattern: "/v1/webhooks", perm: PermWebhooksManage, status: http.StatusCreated,
			summary: "Deliver alert events to a URL, signed with a secret", endpoint: withBody((*Server).createWebhook)},
		{name: "listWebhooks", method: "GET", pattern: "/v1/webhooks", perm: PermWebhooksManage, status: http.StatusOK,
			summary: "Webhooks (secrets are never shown)", endpoint: noBody((*Server).listWebhooks)},
		{name: "deleteWebhook", method: "DELETE", pattern: "/v1/webhooks/{id}", perm: PermWebhooksManage, status: http.StatusNoContent,
			summary: "Delete a webhook and its pending deliveries", endpoint: noContent((*Server).deleteWebhook)},
		{name: "webhookDeliveries", method: "GET", pattern: "/v1/webhooks/{id}/deliveries", perm: PermWebhooksManage, status: http.StatusOK,
			summary: "A webhook's recent deliveries", endpoint: noBody((*Server).webhookDeliveries)},
	}
}

// detectStore is the store's detection side, or a 503.
func (s *Server) detectStore() (DetectStore, error) {
	ds, ok := s.store.(DetectStore)
	if !ok {
		return nil, &apiError{status: http.StatusServiceUnavailable, Code: codeUnavailable, Message: "this server keeps no alerts"}
	}
	return ds, nil
}

// alertManager is the configured manager, or one on the store.
func (s *Server) alertManager() (AlertManager, error) {
	if s.alerts != nil {
		return s.alerts, nil
	}
	return nil, &apiError{status: http.StatusServiceUnavailable, Code: codeUnavailable, Message: "this server does not manage alerts"}
}

// newAlertManager builds the default manager on the store: it records
// alerts and mitigations but has no detector feeding it.
func newAlertManager(st Store, revoker Revoker, commander DeviceCommander) AlertManager {
	as, ok := st.(alert.Store)
	if !ok {
		return nil
	}
	cfg := alert.Config{Store: as, Revoker: revoker}
	if commander != nil {
		cfg.Rotator = commander
	}
	return alert.New(cfg)
}

func (s *Server) listAlerts(r *http.Request) (*AlertList, error) {
	ds, err := s.detectStore()
	if err != nil {
		return nil, err
	}
	q := r.URL.Query()
	n, err := pageLimit(q.Get("limit"))
	if err != nil {
		return nil, err
	}
	as, next, err := ds.ListAlerts(r.Context(), store.AlertFilter{State: q.Get("state"), DeviceID: q.Get("device"), RuleID: q.Get("rule"), Severity: q.Get("severity")}, q.Get("cursor"), n)
	if err != nil {
		return nil, err
	}
	return &AlertList{Items: as, NextCursor: next}, nil
}

func (s *Server) getAlert(r *http.Request) (*AlertDetail, error) {
	ds, err := s.detectStore()
	if err != nil {
		return nil, err
	}
	id := r.PathValue("id")
	a, err := ds.GetAlert(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound("alert", id)
	} else if err != nil {
		return nil, err
	}
	acts, err := ds.AlertActions(r.Context(), id)
	if err != nil {
		return nil, err
	}
	return &AlertDetail{Alert: *a, ActionsTaken: acts}, nil
}

// alertError maps the alert errors of the store and the manager.
func alertError(kind, id string, err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return notFound(kind, id)
	case errors.Is(err, store.ErrAlertState):
		return errorf(http.StatusConflict, codeInvalidTransition, "state", "%s", strings.TrimPrefix(err.Error(), "store: "))
	case errors.Is(err, alert.ErrNotReversible):
		return errorf(http.StatusConflict, codeInvalidTransition, "action", "this action cannot be reverted: a revoked certificate stays revoked and a renewal stays done")
	case errors.Is(err, alert.ErrUnavailable):
		return &apiError{status: http.StatusServiceUnavailable, Code: codeUnavailable, Message: "this node cannot apply the action (no gateway or revocation service)", cause: err}
	}
	return err
}

func (s *Server) acknowledgeAlert(r *http.Request, _ *AcknowledgeRequest) (*store.Alert, error) {
	m, err := s.alertManager()
	if err != nil {
		return nil, err
	}
	id := r.PathValue("id")
	a, err := m.Acknowledge(r.Context(), id, principal(r).Actor())
	return a, alertError("alert", id, err)
}

func (s *Server) resolveAlert(r *http.Request, in *ResolveRequest) (*store.Alert, error) {
	m, err := s.alertManager()
	if err != nil {
		return nil, err
	}
	if len(in.Resolution) > 1000 {
		return nil, validationError("resolution", "is %d characters, at most 1000", len(in.Resolution))
	}
	id := r.PathValue("id")
	a, err := m.Resolve(r.Context(), id, principal(r).Actor(), in.Resolution)
	return a, alertError("alert", id, err)
}

func (s *Server) mitigateAlert(r *http.Request, in *MitigateRequest) (*store.AlertAction, error) {
	m, err := s.alertManager()
	if err != nil {
		return nil, err
	}
	if err := detect.ValidateAction(detect.Action(in.Action)); err != nil {
		return nil, validationError("action", "%v", err)
	}
	id := r.PathValue("id")
	act, err := m.Apply(r.Context(), id, detect.Action(in.Action), principal(r).Actor(), false)
	if err != nil && act == nil {
		return nil, alertError("alert", id, err)
	}
	// A failed mitigation is recorded on the alert; the answer says so.
	return act, nil
}

func (s *Server) revertAlertAction(r *http.Request, in *RevertRequest) (*store.AlertAction, error) {
	m, err := s.alertManager()
	if err != nil {
		return nil, err
	}
	if len(in.Reason) > 1000 {
		return nil, validationError("reason", "is %d characters, at most 1000", len(in.Reason))
	}
	id := r.PathValue("id")
	act, err := m.Revert(r.Context(), id, principal(r).Actor(), in.Reason)
	return act, alertError("action", id, err)
}

// alertStream writes server-sent events.
type alertStream struct {
	s        *Server
	minRank  int
	deadline time.Duration
}

func (s *Server) streamAlerts(r *http.Request) (responseStream, error) {
	m, err := s.alertManager()
	if err != nil {
		return nil, err
	}
	_ = m
	st := &alertStream{s: s}
	q := r.URL.Query()
	if v := q.Get("severity"); v != "" {
		st.minRank = detect.Severity(v).Rank()
		if st.minRank == 0 {
			return nil, queryError("severity", "severity %q: use low, medium, high or critical", v)
		}
	}
	if v := q.Get("for"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return nil, queryError("for", "for %q: write a positive duration such as 30s", v)
		}
		st.deadline = d
	}
	return st, nil
}

func (st *alertStream) writeTo(w http.ResponseWriter, r *http.Request) {
	events, stop := st.s.alerts.Hub().Subscribe()
	defer stop()
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, ": muster alert stream\n\n")
	_ = rc.Flush()
	ctx := r.Context()
	if st.deadline > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, st.deadline)
		defer cancel()
	}
	beat := time.NewTicker(15 * time.Second)
	defer beat.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-beat.C:
			fmt.Fprint(w, ": keep-alive\n\n")
		case ev := <-events:
			if detect.Severity(ev.Alert.Severity).Rank() < st.minRank {
				continue
			}
			data, err := json.Marshal(ev)
			if err != nil {
				continue
			}
			fmt.Fprintf(w, "event: %s\nid: %s\ndata: %s\n\n", ev.Event, ev.Alert.ID, data)
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}
