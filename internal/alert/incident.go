package alert

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/muster-iot/muster/internal/store"
)

// IncidentStore reads what an incident report is made of.
type IncidentStore interface {
	GetIncident(ctx context.Context, id string) (*store.Incident, error)
	GetAlert(ctx context.Context, id string) (*store.Alert, error)
	AlertActions(ctx context.Context, alertID string) ([]store.AlertAction, error)
}

// IncidentReport is an incident with everything it links: its alerts,
// the actions taken on them, and its notes. It is the incident's export,
// as JSON or as Markdown.
type IncidentReport struct {
	Incident   store.Incident      `json:"incident"`
	Alerts     []store.Alert       `json:"alerts"`
	Actions    []store.AlertAction `json:"actions"`
	ExportedAt time.Time           `json:"exportedAt"`
}

// Report gathers an incident's report.
func Report(ctx context.Context, st IncidentStore, id string, now time.Time) (*IncidentReport, error) {
	in, err := st.GetIncident(ctx, id)
	if err != nil {
		return nil, err
	}
	r := &IncidentReport{Incident: *in, Alerts: []store.Alert{}, Actions: []store.AlertAction{}, ExportedAt: now.UTC()}
	for _, aid := range in.AlertIDs {
		a, err := st.GetAlert(ctx, aid)
		if err != nil {
			return nil, err
		}
		r.Alerts = append(r.Alerts, *a)
		acts, err := st.AlertActions(ctx, aid)
		if err != nil {
			return nil, err
		}
		r.Actions = append(r.Actions, acts...)
	}
	return r, nil
}

// Markdown renders the report for people: the timeline of an
// investigation, to attach to a ticket.
func (r *IncidentReport) Markdown() string {
	var b strings.Builder
	in := r.Incident
	ts := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	fmt.Fprintf(&b, "# Incident %s: %s\n\n", in.ID, md(in.Title))
	fmt.Fprintf(&b, "- State: %s\n- Opened: %s by %s\n", in.State, ts(in.CreatedAt), md(in.CreatedBy))
	if in.ClosedAt != nil {
		fmt.Fprintf(&b, "- Closed: %s\n", ts(*in.ClosedAt))
	}
	fmt.Fprintf(&b, "- Exported: %s\n\n## Alerts\n\n", ts(r.ExportedAt))
	if len(r.Alerts) == 0 {
		b.WriteString("None linked.\n")
	} else {
		b.WriteString("| alert | device | rule | severity | state | first seen | hits | summary |\n|---|---|---|---|---|---|---|---|\n")
		for _, a := range r.Alerts {
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %d | %s |\n", a.ID, a.DeviceID, a.RuleID, a.Severity, a.State, ts(a.FirstSeen), a.Hits, md(a.Summary))
		}
	}
	b.WriteString("\n## Actions\n\n")
	if len(r.Actions) == 0 {
		b.WriteString("None taken.\n")
	} else {
		b.WriteString("| at | alert | device | action | status | by | detail |\n|---|---|---|---|---|---|---|\n")
		for _, a := range r.Actions {
			by := a.Actor
			if a.Auto {
				by += " (automatic)"
			}
			detail := a.Detail
			if a.RevertedAt != nil {
				detail += fmt.Sprintf("; reverted %s by %s", ts(*a.RevertedAt), a.RevertedBy)
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", ts(a.At), a.AlertID, a.DeviceID, a.Action, a.Status, md(by), md(detail))
		}
	}
	b.WriteString("\n## Notes\n\n")
	if len(in.Notes) == 0 {
		b.WriteString("None.\n")
	}
	for _, n := range in.Notes {
		fmt.Fprintf(&b, "### %s, %s\n\n%s\n\n", ts(n.At), md(n.Author), n.Body)
	}
	return b.String()
}

// md keeps table cells in one piece.
func md(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}
