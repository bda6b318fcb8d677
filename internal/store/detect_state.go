package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// DetectState is the learned behaviour-detection state of one device or
// cohort, as the detect package encodes it (the store does not look
// inside). Node is the node that wrote it.
type DetectState struct {
	Key   string
	Node  string
	State []byte
}

// detectStateChunk is how many rows one statement writes: the width of a
// multi-row INSERT beyond which statements grow without getting faster.
const detectStateChunk = 500

// SaveDeviceDetectStates writes the states of devices, as node's, in one
// transaction: a device's previous state is replaced, whoever wrote it. A
// state of a device the registry does not have is skipped, so the foreign
// key that deletes a device's state with the device never refuses a batch.
// It returns how many states were written. A later entry for the same
// device wins over an earlier one.
func (s *Store) SaveDeviceDetectStates(ctx context.Context, node string, states []DetectState) (written int, err error) {
	if node == "" {
		return 0, errors.New("store: save detection state: no node")
	}
	if err := validDetectStates(states); err != nil {
		return 0, err
	}
	states = lastPerKey(states)
	now := s.clock()
	err = s.inTx(ctx, func(t *txn) error {
		written = 0
		ids := make([]any, 0, detectStateChunk)
		rows := make([]any, 0, 4*detectStateChunk)
		for start := 0; start < len(states); start += detectStateChunk {
			chunk := states[start:min(start+detectStateChunk, len(states))]
			ids = ids[:0]
			for _, st := range chunk {
				ids = append(ids, st.Key)
			}
			known, err := existingDevices(ctx, t, ids)
			if err != nil {
				return err
			}
			rows = rows[:0]
			for _, st := range chunk {
				if known[st.Key] {
					rows = append(rows, st.Key, node, st.State, now)
				}
			}
			n := len(rows) / 4
			if n == 0 {
				continue
			}
			stmt, err := t.prepare(ctx, upsertSQL("detect_device_state", []string{"device_id", "node", "state", "updated_at"}, 1, n))
			if err != nil {
				return err
			}
			if _, err := stmt.ExecContext(ctx, rows...); err != nil {
				return fmt.Errorf("store: save detection state: %w", err)
			}
			written += n
		}
		return nil
	})
	return written, err
}

// validDetectStates refuses a batch with a state without key or bytes
// before anything is written.
func validDetectStates(states []DetectState) error {
	for _, st := range states {
		if st.Key == "" || len(st.State) == 0 {
			return errors.New("store: save detection state: every state needs a key and bytes")
		}
	}
	return nil
}

// existingDevices reports which of ids the registry has.
func existingDevices(ctx context.Context, t *txn, ids []any) (map[string]bool, error) {
	q := "SELECT id FROM devices WHERE id IN (" + strings.TrimSuffix(strings.Repeat("?,", len(ids)), ",") + ")"
	stmt, err := t.prepare(ctx, q)
	if err != nil {
		return nil, err
	}
	rows, err := stmt.QueryContext(ctx, ids...)
	if err != nil {
		return nil, fmt.Errorf("store: save detection state: find devices: %w", err)
	}
	defer rows.Close()
	known := make(map[string]bool, len(ids))
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("store: save detection state: find devices: %w", err)
		}
		known[id] = true
	}
	return known, rows.Err()
}

// SaveCohortDetectStates writes the states of cohorts as node's, in one
// transaction, replacing what node wrote of them before.
func (s *Store) SaveCohortDetectStates(ctx context.Context, node string, states []DetectState) error {
	if node == "" {
		return errors.New("store: save cohort detection state: no node")
	}
	if err := validDetectStates(states); err != nil {
		return err
	}
	states = lastPerKey(states)
	now := s.clock()
	return s.inTx(ctx, func(t *txn) error {
		for start := 0; start < len(states); start += detectStateChunk {
			chunk := states[start:min(start+detectStateChunk, len(states))]
			rows := make([]any, 0, 4*len(chunk))
			for _, st := range chunk {
				rows = append(rows, node, st.Key, st.State, now)
			}
			stmt, err := t.prepare(ctx, upsertSQL("detect_cohort_state", []string{"node", "cohort", "state", "updated_at"}, 2, len(chunk)))
			if err != nil {
				return err
			}
			if _, err := stmt.ExecContext(ctx, rows...); err != nil {
				return fmt.Errorf("store: save cohort detection state: %w", err)
			}
		}
		return nil
	})
}

// upsertSQL is a multi-row INSERT of n rows that replaces the non-key
// columns of rows whose first keyCols columns exist already.
func upsertSQL(table string, cols []string, keyCols, n int) string {
	var b strings.Builder
	b.WriteString(insertSQL(table, cols, n))
	b.WriteString(" ON CONFLICT (")
	b.WriteString(strings.Join(cols[:keyCols], ", "))
	b.WriteString(") DO UPDATE SET ")
	for i, c := range cols[keyCols:] {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(c + " = excluded." + c)
	}
	return b.String()
}

// lastPerKey drops all but the last state of each key: one statement may
// not update a row twice on PostgreSQL.
func lastPerKey(states []DetectState) []DetectState {
	last := make(map[string]int, len(states))
	for i, st := range states {
		last[st.Key] = i
	}
	if len(last) == len(states) {
		return states
	}
	out := make([]DetectState, 0, len(last))
	for i, st := range states {
		if last[st.Key] == i {
			out = append(out, st)
		}
	}
	return out
}

// DeviceDetectStates calls fn with every device state node wrote, in
// device id order, streaming them so a node restoring a million devices
// does not hold them all at once. An error of fn stops the walk and is
// returned.
func (s *Store) DeviceDetectStates(ctx context.Context, node string, fn func(DetectState) error) error {
	rows, err := s.query(ctx, "SELECT device_id, state FROM detect_device_state WHERE node = ? ORDER BY device_id", node)
	if err != nil {
		return fmt.Errorf("store: load detection state: %w", err)
	}
	return walkDetectStates(rows, node, fn)
}

// CohortDetectStates calls fn with every cohort state node wrote.
func (s *Store) CohortDetectStates(ctx context.Context, node string, fn func(DetectState) error) error {
	rows, err := s.query(ctx, "SELECT cohort, state FROM detect_cohort_state WHERE node = ? ORDER BY cohort", node)
	if err != nil {
		return fmt.Errorf("store: load cohort detection state: %w", err)
	}
	return walkDetectStates(rows, node, fn)
}

func walkDetectStates(rows *sql.Rows, node string, fn func(DetectState) error) error {
	defer rows.Close()
	for rows.Next() {
		st := DetectState{Node: node}
		if err := rows.Scan(&st.Key, &st.State); err != nil {
			return fmt.Errorf("store: read detection state: %w", err)
		}
		if err := fn(st); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store: read detection state: %w", err)
	}
	return nil
}

// DeviceDetectState returns a device's state, whichever node wrote it, or
// ErrNotFound.
func (s *Store) DeviceDetectState(ctx context.Context, deviceID string) (DetectState, error) {
	st := DetectState{Key: deviceID}
	err := s.queryRow(ctx, "SELECT node, state FROM detect_device_state WHERE device_id = ?", deviceID).Scan(&st.Node, &st.State)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return DetectState{}, fmt.Errorf("store: detection state of %s: %w", deviceID, ErrNotFound)
	case err != nil:
		return DetectState{}, fmt.Errorf("store: detection state of %s: %w", deviceID, err)
	}
	return st, nil
}
