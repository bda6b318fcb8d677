package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
)

// This file keeps the configuration audit's runs and findings; package
// audit decides what is found.

// Audit run kinds, statuses and finding states.
const (
	AuditManual    = "manual"
	AuditScheduled = "scheduled"

	AuditRunning = "running"
	AuditDone    = "done"
	AuditFailed  = "failed"

	FindingOpen       = "open"
	FindingResolved   = "resolved"
	FindingSuppressed = "suppressed" // open, and silenced by a suppression that has not expired
)

// ErrAuditRunEnded means a run was recorded done or failed already: a
// run another node took for abandoned stays failed when its own node
// turns out to be alive after all.
var ErrAuditRunEnded = errors.New("audit run has ended already")

// EventFindingSuppressed is the fleet audit log event of a suppression.
const EventFindingSuppressed = "audit.finding_suppressed"

// AuditRun is one run of the configuration audit.
type AuditRun struct {
	ID string `json:"id"`
	// Slot is set on scheduled runs: the interval they ran for.
	Slot       string      `json:"slot,omitempty"`
	Kind       string      `json:"kind"`
	Actor      string      `json:"actor"`
	Node       string      `json:"node"`
	Status     string      `json:"status"`
	Checks     []string    `json:"checks"`
	StartedAt  time.Time   `json:"startedAt"`
	FinishedAt *time.Time  `json:"finishedAt,omitempty"`
	Counts     AuditCounts `json:"counts"`
	// Progress is how far the run got: while it runs, as of its last
	// report; after it, where it finished or failed.
	Progress AuditProgress `json:"progress"`
	Error    string        `json:"error,omitempty"`
}

// AuditProgress is what a run has examined so far. A run reports it at
// intervals (docs/audit.md), not per item, so it lags the run by up to
// one interval.
type AuditProgress struct {
	// ChecksDone counts the checks that finished; Check is the one
	// running now, empty before the first and while the findings are
	// recorded.
	ChecksDone int    `json:"checksDone"`
	Check      string `json:"check,omitempty"`
	// Devices, Certificates, MeterRows and Histories count what the
	// checks read of the fleet: each item is counted once per read, and
	// checks share reads.
	Devices      int64 `json:"devices"`
	Certificates int64 `json:"certificates"`
	MeterRows    int64 `json:"meterRows"`
	Histories    int64 `json:"histories"`
	// Findings is how many findings the checks reported so far.
	Findings int `json:"findings"`
	// UpdatedAt is when the run last reported; zero before its first report.
	UpdatedAt time.Time `json:"updatedAt,omitzero"`
}

// auditRunCounts is what the counts column holds: the counts of a
// finished run and the progress of any run, kept in one JSON document so
// progress needed no schema change.
type auditRunCounts struct {
	AuditCounts
	Progress *AuditProgress `json:"progress,omitempty"`
}

// AuditCounts sums up what a run found.
type AuditCounts struct {
	// Findings is how many findings the run reported, New how many of
	// those were not open before (first seen, or back after being
	// resolved), Resolved how many open findings it no longer reports.
	Findings int `json:"findings"`
	New      int `json:"new"`
	Resolved int `json:"resolved"`
	// Open and Suppressed count all findings in those states after the
	// run; BySeverity counts the open ones by severity.
	Open       int            `json:"open"`
	Suppressed int            `json:"suppressed"`
	BySeverity map[string]int `json:"bySeverity,omitempty"`
}

// Finding is one problem a check found with one subject. Key is stable
// across runs, so a run updates what earlier runs found.
type Finding struct {
	Key         string          `json:"key"`
	Check       string          `json:"check"`
	Severity    string          `json:"severity"`
	SubjectKind string          `json:"subjectKind"`
	Subject     string          `json:"subject"`
	DeviceID    string          `json:"deviceId,omitempty"`
	State       string          `json:"state"`
	Message     string          `json:"message"`
	Fix         string          `json:"fix"`
	Evidence    json.RawMessage `json:"evidence,omitempty"`
	FirstSeen   time.Time       `json:"firstSeen"`
	LastSeen    time.Time       `json:"lastSeen"`
	ResolvedAt  *time.Time      `json:"resolvedAt,omitempty"`
	FirstRun    string          `json:"firstRun"`
	LastRun     string          `json:"lastRun"`
	Suppression *Suppression    `json:"suppression,omitempty"`
}

// Suppression silences a finding until it expires.
type Suppression struct {
	Reason string    `json:"reason"`
	By     string    `json:"by"`
	Until  time.Time `json:"until"`
}

// FindingFilter selects findings; empty fields match anything.
type FindingFilter struct {
	Severity string
	Check    string
	DeviceID string
	// State is open (and not suppressed), suppressed, or resolved.
	State string
}

// auditRunAbandoned is how long a run may stay running before another
// run takes it for abandoned: a whole audit takes seconds, so an hour
// means its node died in the middle.
const auditRunAbandoned = time.Hour

// abandonedReason is the error of a run its node left running.
const abandonedReason = "abandoned: its node stopped during the run"

// closeAbandonedRuns marks failed, inside t, the runs left running by node
// and, when before is not zero, any node's runs started before it; it
// returns how many.
func closeAbandonedRuns(ctx context.Context, t *txn, node string, now, before time.Time) (int64, error) {
	q, args := "UPDATE audit_runs SET status = ?, finished_at = ?, error = ? WHERE status = ? AND node = ?",
		[]any{AuditFailed, now, abandonedReason, AuditRunning, node}
	if !before.IsZero() {
		q = "UPDATE audit_runs SET status = ?, finished_at = ?, error = ? WHERE status = ? AND (node = ? OR started_at < ?)"
		args = append(args, before)
	}
	res, err := t.exec(ctx, q, args...)
	if err != nil {
		return 0, fmt.Errorf("store: close abandoned audit runs: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("store: close abandoned audit runs: %w", err)
	}
	return n, nil
}

// CloseNodeAuditRuns marks failed the audit runs node left running, and
// returns how many. A node calls it as it starts, before it runs any
// audit: a run it left running then died with it (node ids are unique to
// a node), and would otherwise stay running until the node's next audit,
// or an hour for the others.
func (s *Store) CloseNodeAuditRuns(ctx context.Context, node string) (int64, error) {
	var n int64
	err := s.inTx(ctx, func(t *txn) error {
		var err error
		n, err = closeAbandonedRuns(ctx, t, node, s.clock(), time.Time{})
		return err
	})
	return n, err
}

// StartAuditRun records a run as running and gives it an id. A scheduled
// run names its slot; when another node took that slot already the call
// fails with ErrDuplicate, and the caller skips the slot.
//
// Runs left running by a node that died are marked failed here, in the
// same transaction: the node's own earlier runs (a node runs one audit at
// a time, so they cannot be live) and any node's runs older than
// auditRunAbandoned.
func (s *Store) StartAuditRun(ctx context.Context, run *AuditRun) error {
	now := s.clock()
	run.StartedAt, run.Status = now, AuditRunning
	if run.ID == "" {
		run.ID = fleet.NewID("aud_", now)
	}
	checks, _ := json.Marshal(orEmptySlice(run.Checks))
	counts, _ := json.Marshal(run.Counts)
	return s.inTx(ctx, func(t *txn) error {
		if _, err := closeAbandonedRuns(ctx, t, run.Node, now, now.Add(-auditRunAbandoned)); err != nil {
			return err
		}
		_, err := t.exec(ctx, `INSERT INTO audit_runs (id, slot, kind, actor, node, status, checks, started_at, counts, error)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, '')`, run.ID, run.Slot, run.Kind, run.Actor, run.Node, run.Status, string(checks), now, string(counts))
		switch {
		case err != nil && t.d.isUniqueViolation(err):
			return fmt.Errorf("store: audit slot %s was taken by another node: %w", run.Slot, ErrDuplicate)
		case err != nil:
			return fmt.Errorf("store: record audit run: %w", err)
		}
		return nil
	})
}

// AuditRunProgress records how far a running run got. It changes nothing
// once the run is done or failed, so a late report cannot overwrite how a
// run ended. An unknown id is ErrNotFound.
func (s *Store) AuditRunProgress(ctx context.Context, id string, p AuditProgress) error {
	p.UpdatedAt = s.clock().UTC()
	counts, _ := json.Marshal(auditRunCounts{Progress: &p})
	var n int64
	err := s.inTx(ctx, func(t *txn) error {
		res, err := t.exec(ctx, "UPDATE audit_runs SET counts = ? WHERE id = ? AND status = ?", string(counts), id, AuditRunning)
		if err != nil {
			return fmt.Errorf("store: record progress of audit run %s: %w", id, err)
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return err
	}
	if n == 0 {
		// Not running: unknown, or it ended already.
		_, err = s.AuditRun(ctx, id)
	}
	return err
}

// FailAuditRun records that a running run stopped with an error. Its
// findings are left as they were. A run that ended already keeps how it
// ended; that is not an error.
func (s *Store) FailAuditRun(ctx context.Context, id string, cause error) error {
	return s.inTx(ctx, func(t *txn) error {
		if _, err := t.exec(ctx, "UPDATE audit_runs SET status = ?, finished_at = ?, error = ? WHERE id = ? AND status = ?",
			AuditFailed, s.clock(), cause.Error(), id, AuditRunning); err != nil {
			return fmt.Errorf("store: record failed audit run %s: %w", id, err)
		}
		return nil
	})
}

// findingRow is what FinishAuditRun compares a reported finding with.
type findingRow struct {
	state, severity, message, fix, evidence, subjectKind, subject, deviceID string
}

// FinishAuditRun records what run found for the checks it ran, in one
// transaction: new findings are added, findings reported again are
// updated (and reopened if they had been resolved), and open findings of
// those checks that the run did not report are resolved. Findings of
// checks that did not run are left alone. It returns the run finished.
func (s *Store) FinishAuditRun(ctx context.Context, runID string, checks []string, found []Finding) (*AuditRun, error) {
	now := s.clock()
	var counts AuditCounts
	err := s.inTx(ctx, func(t *txn) error {
		// The run row is read first, and locked on PostgreSQL, so a run
		// failed meanwhile (taken for abandoned) changes no findings, and
		// the progress it reported is kept with its counts.
		var status, stored string
		err := t.queryRow(ctx, "SELECT status, counts FROM audit_runs r WHERE id = ?"+t.d.forUpdate("r"), runID).Scan(&status, &stored)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("store: audit run %s: %w", runID, ErrNotFound)
		case err != nil:
			return fmt.Errorf("store: read audit run %s: %w", runID, err)
		case status != AuditRunning:
			return fmt.Errorf("store: audit run %s is %s: %w", runID, status, ErrAuditRunEnded)
		}
		old := map[string]findingRow{}
		err = queryIn(ctx, t.query, "SELECT finding_key, state, severity, message, fix, evidence, subject_kind, subject, device_id FROM audit_findings WHERE check_id", checks, "",
			func(rows *sql.Rows) error {
				defer rows.Close()
				for rows.Next() {
					var k string
					var r findingRow
					if err := rows.Scan(&k, &r.state, &r.severity, &r.message, &r.fix, &r.evidence, &r.subjectKind, &r.subject, &r.deviceID); err != nil {
						return err
					}
					old[k] = r
				}
				return rows.Err()
			})
		if err != nil {
			return fmt.Errorf("store: read findings: %w", err)
		}
		var touch []string
		var inserts []any
		seen := make(map[string]bool, len(found))
		for i := range found {
			f := &found[i]
			if seen[f.Key] {
				return fmt.Errorf("store: finding %s reported twice in one run", f.Key)
			}
			seen[f.Key] = true
			ev := string(f.Evidence)
			if ev == "" {
				ev = "{}"
			}
			counts.Findings++
			o, exists := old[f.Key]
			switch {
			case !exists:
				counts.New++
				inserts = append(inserts, f.Key, f.Check, f.Severity, f.SubjectKind, f.Subject, f.DeviceID, FindingOpen,
					f.Message, f.Fix, ev, now, now, runID, runID, "", "")
			case o.state == FindingResolved || o.severity != f.Severity || o.message != f.Message || o.fix != f.Fix || o.evidence != ev ||
				o.subjectKind != f.SubjectKind || o.subject != f.Subject || o.deviceID != f.DeviceID:
				if o.state == FindingResolved {
					counts.New++
				}
				if _, err := t.exec(ctx, `UPDATE audit_findings SET state = ?, severity = ?, subject_kind = ?, subject = ?, device_id = ?,
					message = ?, fix = ?, evidence = ?, last_seen = ?, last_run = ?, resolved_at = NULL WHERE finding_key = ?`,
					FindingOpen, f.Severity, f.SubjectKind, f.Subject, f.DeviceID, f.Message, f.Fix, ev, now, runID, f.Key); err != nil {
					return fmt.Errorf("store: update finding %s: %w", f.Key, err)
				}
			default:
				touch = append(touch, f.Key)
			}
		}
		if err := execIn(ctx, t, "UPDATE audit_findings SET last_seen = ?, last_run = ? WHERE finding_key", []any{now, runID}, touch); err != nil {
			return fmt.Errorf("store: update findings: %w", err)
		}
		const cols = 16
		per := max(1, min(500, t.d.maxParams()/cols))
		for len(inserts) > 0 {
			n := min(len(inserts)/cols, per)
			q := insertSQL("audit_findings", []string{"finding_key", "check_id", "severity", "subject_kind", "subject", "device_id", "state",
				"message", "fix", "evidence", "first_seen", "last_seen", "first_run", "last_run", "suppress_reason", "suppressed_by"}, n)
			if _, err := t.exec(ctx, q, inserts[:n*cols]...); err != nil {
				return fmt.Errorf("store: add findings: %w", err)
			}
			inserts = inserts[n*cols:]
		}
		var gone []string
		for k, o := range old {
			if !seen[k] && o.state == FindingOpen {
				gone = append(gone, k)
			}
		}
		slices.Sort(gone)
		counts.Resolved = len(gone)
		if err := execIn(ctx, t, "UPDATE audit_findings SET state = ?, resolved_at = ? WHERE finding_key", []any{FindingResolved, now}, gone); err != nil {
			return fmt.Errorf("store: resolve findings: %w", err)
		}
		if err := stateCounts(ctx, t.query, now, &counts); err != nil {
			return err
		}
		var prev auditRunCounts
		_ = json.Unmarshal([]byte(stored), &prev) // a run without progress keeps none
		checksJSON, _ := json.Marshal(orEmptySlice(checks))
		countsJSON, _ := json.Marshal(auditRunCounts{AuditCounts: counts, Progress: prev.Progress})
		if _, err := t.exec(ctx, "UPDATE audit_runs SET status = ?, finished_at = ?, checks = ?, counts = ? WHERE id = ?",
			AuditDone, now, string(checksJSON), string(countsJSON), runID); err != nil {
			return fmt.Errorf("store: finish audit run %s: %w", runID, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.AuditRun(ctx, runID)
}

// execIn runs prefix + " IN (...)" with args before the list, in slices.
func execIn(ctx context.Context, t *txn, prefix string, args []any, vals []string) error {
	for start := 0; start < len(vals); start += maxInList {
		part := vals[start:min(start+maxInList, len(vals))]
		all := append(slices.Clone(args), make([]any, 0, len(part))...)
		for _, v := range part {
			all = append(all, v)
		}
		if _, err := t.exec(ctx, prefix+" IN ("+strings.TrimSuffix(strings.Repeat("?,", len(part)), ",")+")", all...); err != nil {
			return err
		}
	}
	return nil
}

// stateCounts counts open findings by severity, and suppressed ones, at now.
func stateCounts(ctx context.Context, query queryFunc, now time.Time, c *AuditCounts) error {
	rows, err := query(ctx, `SELECT severity, suppressed, COUNT(*) FROM (SELECT severity,
		CASE WHEN suppressed_until IS NOT NULL AND suppressed_until > ? THEN 1 ELSE 0 END AS suppressed
		FROM audit_findings WHERE state = ?) f GROUP BY severity, suppressed`, now, FindingOpen)
	if err != nil {
		return fmt.Errorf("store: count findings: %w", err)
	}
	defer rows.Close()
	c.BySeverity = map[string]int{}
	for rows.Next() {
		var sev string
		var suppressed, n int
		if err := rows.Scan(&sev, &suppressed, &n); err != nil {
			return fmt.Errorf("store: count findings: %w", err)
		}
		if suppressed == 1 {
			c.Suppressed += n
			continue
		}
		c.Open += n
		c.BySeverity[sev] += n
	}
	return rows.Err()
}

const auditRunCols = "id, slot, kind, actor, node, status, checks, started_at, finished_at, counts, error"

func scanAuditRun(r scanner) (*AuditRun, error) {
	var run AuditRun
	var checks, counts string
	var finished sql.NullTime
	if err := r.Scan(&run.ID, &run.Slot, &run.Kind, &run.Actor, &run.Node, &run.Status, &checks, &run.StartedAt, &finished, &counts, &run.Error); err != nil {
		return nil, err
	}
	run.StartedAt = run.StartedAt.UTC()
	run.FinishedAt = timePtr(finished)
	var c auditRunCounts
	if err := errors.Join(json.Unmarshal([]byte(checks), &run.Checks), json.Unmarshal([]byte(counts), &c)); err != nil {
		return nil, fmt.Errorf("decode audit run %s: %w", run.ID, err)
	}
	run.Counts = c.AuditCounts
	if c.Progress != nil {
		run.Progress = *c.Progress
	}
	return &run, nil
}

// AuditRun returns one audit run, or ErrNotFound.
func (s *Store) AuditRun(ctx context.Context, id string) (*AuditRun, error) {
	run, err := scanAuditRun(s.queryRow(ctx, "SELECT "+auditRunCols+" FROM audit_runs WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: audit run %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: read audit run %s: %w", id, err)
	}
	return run, nil
}

// AuditRuns returns the latest limit audit runs, newest first.
func (s *Store) AuditRuns(ctx context.Context, limit int) ([]AuditRun, error) {
	rows, err := s.query(ctx, "SELECT "+auditRunCols+" FROM audit_runs ORDER BY started_at DESC, id DESC LIMIT ?", limit)
	if err != nil {
		return nil, fmt.Errorf("store: list audit runs: %w", err)
	}
	out, err := scanAll(rows, scanAuditRun)
	if err != nil {
		return nil, fmt.Errorf("store: list audit runs: %w", err)
	}
	return out, nil
}

const findingCols = `finding_key, check_id, severity, subject_kind, subject, device_id, state, message, fix, evidence,
	first_seen, last_seen, resolved_at, first_run, last_run, suppressed_until, suppress_reason, suppressed_by`

// scanFinding reads a row of findingCols; now decides whether a
// suppression still holds.
func scanFinding(now time.Time) func(r scanner) (*Finding, error) {
	return func(r scanner) (*Finding, error) {
		var f Finding
		var ev string
		var resolved, until sql.NullTime
		var reason, by string
		if err := r.Scan(&f.Key, &f.Check, &f.Severity, &f.SubjectKind, &f.Subject, &f.DeviceID, &f.State, &f.Message, &f.Fix, &ev,
			&f.FirstSeen, &f.LastSeen, &resolved, &f.FirstRun, &f.LastRun, &until, &reason, &by); err != nil {
			return nil, err
		}
		f.Evidence = json.RawMessage(ev)
		f.FirstSeen, f.LastSeen = f.FirstSeen.UTC(), f.LastSeen.UTC()
		f.ResolvedAt = timePtr(resolved)
		if until.Valid && until.Time.After(now) {
			f.Suppression = &Suppression{Reason: reason, By: by, Until: until.Time.UTC()}
			if f.State == FindingOpen {
				f.State = FindingSuppressed
			}
		}
		return &f, nil
	}
}

// Finding returns one finding by key, or ErrNotFound.
func (s *Store) Finding(ctx context.Context, key string) (*Finding, error) {
	f, err := scanFinding(s.clock())(s.queryRow(ctx, "SELECT "+findingCols+" FROM audit_findings WHERE finding_key = ?", key))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: finding %s: %w", key, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: read finding %s: %w", key, err)
	}
	return f, nil
}

// ListFindings returns up to limit findings matching f in key order,
// after cursor, and the cursor of the next page ("" at the end).
func (s *Store) ListFindings(ctx context.Context, f FindingFilter, cursor string, limit int) ([]Finding, string, error) {
	pc, err := decodeCursor(cursor)
	if err != nil {
		return nil, "", err
	}
	now := s.clock()
	var where []string
	var args []any
	add := func(cond string, a ...any) {
		where = append(where, cond)
		args = append(args, a...)
	}
	if f.Severity != "" {
		add("severity = ?", f.Severity)
	}
	if f.Check != "" {
		add("check_id = ?", f.Check)
	}
	if f.DeviceID != "" {
		add("device_id = ?", f.DeviceID)
	}
	switch f.State {
	case "":
	case FindingOpen:
		add("state = ? AND (suppressed_until IS NULL OR suppressed_until <= ?)", FindingOpen, now)
	case FindingSuppressed:
		add("state = ? AND suppressed_until > ?", FindingOpen, now)
	case FindingResolved:
		add("state = ?", FindingResolved)
	default:
		return nil, "", fmt.Errorf("store: finding state %q is not open, suppressed or resolved", f.State)
	}
	if pc.After != "" {
		add("finding_key > ?", pc.After)
	}
	q := "SELECT " + findingCols + " FROM audit_findings"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	rows, err := s.query(ctx, q+" ORDER BY finding_key LIMIT ?", append(args, limit+1)...)
	if err != nil {
		return nil, "", fmt.Errorf("store: list findings: %w", err)
	}
	out, err := scanAll(rows, scanFinding(now))
	if err != nil {
		return nil, "", fmt.Errorf("store: list findings: %w", err)
	}
	if len(out) > limit {
		out = out[:limit]
		return out, encodeCursor(pageCursor{After: out[limit-1].Key}), nil
	}
	return out, "", nil
}

// suppressionAudit is what the fleet audit log records of a suppression.
type suppressionAudit struct {
	Finding string    `json:"finding"`
	Check   string    `json:"check"`
	Subject string    `json:"subject"`
	Reason  string    `json:"reason"`
	Until   time.Time `json:"until"`
}

// SuppressFinding silences a finding until until, with a reason, and
// records it in the fleet audit log in the same transaction. Suppressing
// again replaces the suppression. An unknown key is ErrNotFound.
func (s *Store) SuppressFinding(ctx context.Context, key, reason string, until time.Time, actor string) (*Finding, error) {
	until = until.UTC().Truncate(time.Microsecond)
	err := s.inTx(ctx, func(t *txn) error {
		var check, subject string
		err := t.queryRow(ctx, "SELECT check_id, subject FROM audit_findings f WHERE finding_key = ?"+t.d.forUpdate("f"), key).Scan(&check, &subject)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("store: finding %s: %w", key, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("store: read finding %s: %w", key, err)
		}
		if _, err := t.exec(ctx, "UPDATE audit_findings SET suppressed_until = ?, suppress_reason = ?, suppressed_by = ? WHERE finding_key = ?",
			until, reason, actor, key); err != nil {
			return fmt.Errorf("store: suppress finding %s: %w", key, err)
		}
		data, err := eventData(suppressionAudit{Finding: key, Check: check, Subject: subject, Reason: reason, Until: until})
		if err != nil {
			return err
		}
		return s.appendFleetEvent(ctx, t, EventFindingSuppressed, actor, data)
	})
	if err != nil {
		return nil, err
	}
	return s.Finding(ctx, key)
}
