package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/notify"
)

// UpdateDevice changes one device in one transaction. It reads the device
// with a write lock, checks expectVersion when it is positive (else
// ErrVersionMismatch), and calls fn with the decoded device. fn's error is
// returned unchanged and nothing is written; a nil *Change writes nothing and
// returns the device as stored. Otherwise the changed device is validated,
// its version bumped, its row and side tables rewritten and the change
// appended to its history, all or nothing.
//
// fn runs inside the transaction: keep it short and do not call the Store
// from it to write, or it waits for itself.
func (s *Store) UpdateDevice(ctx context.Context, id string, expectVersion int64, actor string, fn func(*fleet.Device) (*Change, error)) (*fleet.Device, error) {
	var out *fleet.Device
	err := s.inTx(ctx, func(t *txn) error {
		var err error
		out, err = s.updateInTx(ctx, t, id, expectVersion, actor, fn)
		return err
	})
	if err != nil {
		if s.d.isUniqueViolation(err) {
			return nil, fmt.Errorf("store: device %s: the new factory/model/serial is already registered: %w", id, ErrDuplicate)
		}
		return nil, err
	}
	return out, nil
}

// updateInTx is UpdateDevice inside t, for writers that change a device
// together with other tables in one transaction.
func (s *Store) updateInTx(ctx context.Context, t *txn, id string, expectVersion int64, actor string, fn func(*fleet.Device) (*Change, error)) (*fleet.Device, error) {
	var doc string
	var bom sql.NullString
	var headSeq int64
	var headHash string
	err := t.queryRow(ctx, "SELECT d.doc, b.doc, d.head_seq, d.head_hash FROM devices d LEFT JOIN boms b ON b.sha256 = d.bom_sha256 WHERE d.id = ?"+t.d.forUpdate("d"), id).
		Scan(&doc, &bom, &headSeq, &headHash)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: device %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: read device %s: %w", id, err)
	}
	d, err := decodeDevice(doc, bom)
	if err != nil {
		return nil, err
	}
	if expectVersion > 0 && d.Version != expectVersion {
		return nil, fmt.Errorf("store: device %s is at version %d, not %d: %w", id, d.Version, expectVersion, ErrVersionMismatch)
	}
	oldComps, err := bomCache{}.components(d.Manufacturing.BOM)
	if err != nil {
		return nil, fmt.Errorf("store: stored BOM of device %s: %w", id, err)
	}
	// The old record is taken before fn changes d: its side rows now, and
	// the row's fields from a shallow copy, whose scalar fields fn cannot
	// reach. One decode then serves both the old record and fn.
	old := *d
	oldRec, err := storedRecord(&old, doc, oldComps)
	if err != nil {
		return nil, err
	}
	ch, err := fn(d)
	if err != nil {
		return nil, err
	}
	if ch == nil {
		// fn may have changed d before deciding not to: answer the
		// device as stored.
		return decodeDevice(doc, bom)
	}
	return s.writeUpdate(ctx, t, oldRec, d, headSeq, headHash, ch, actor)
}

// writeUpdate stores d as the next version of old and appends ch to its
// history.
func (s *Store) writeUpdate(ctx context.Context, t *txn, old *record, d *fleet.Device, headSeq int64, headHash string, ch *Change, actor string) (*fleet.Device, error) {
	// What identifies the record and when it began are not fn's to change.
	d.ID, d.CreatedAt = old.dev.ID, old.dev.CreatedAt
	comps, err := validate(d, bomCache{})
	if err != nil {
		return nil, err
	}
	data, err := eventData(ch.Data)
	if err != nil {
		return nil, err
	}
	typ := ch.Type
	if typ == "" {
		typ = fleet.EventUpdated
	}
	now := s.clock()
	d.Version = old.dev.Version + 1
	d.UpdatedAt = now
	rec, err := newRecord(d, comps)
	if err != nil {
		return nil, err
	}
	e := fleet.Event{Subject: d.ID, Type: typ, Actor: actor, At: now, Data: data}
	e.Seal(chainHead(headSeq, headHash))

	if err := putBOM(ctx, t, rec); err != nil {
		return nil, err
	}
	t.notice(notify.Devices, d.ID)
	query, args := updateDeviceSQL(old.deviceRow(headSeq, headHash), rec.deviceRow(e.Seq, e.Hash))
	if _, err := t.exec(ctx, query, args...); err != nil {
		return nil, fmt.Errorf("store: write device %s: %w", d.ID, err)
	}
	if err := writeSideDiff(ctx, t, old, rec); err != nil {
		return nil, err
	}
	if err := insertEvent(ctx, t, &e); err != nil {
		return nil, err
	}
	return rec.decode()
}

// updateDeviceSQL is the UPDATE that turns the devices row was into now,
// with its arguments. It sets only the columns whose values differ: the
// database rewrites the index entries of every column an UPDATE sets,
// changed or not, and a device has an index on most of its columns. Both
// rows are in deviceCols order, which starts with id, the key.
func updateDeviceSQL(was, now []any) (string, []any) {
	var b strings.Builder
	b.WriteString("UPDATE devices SET ")
	args := make([]any, 0, len(now))
	for i := 1; i < len(now); i++ {
		if sameValue(was[i], now[i]) {
			continue
		}
		if len(args) > 0 {
			b.WriteString(", ")
		}
		b.WriteString(deviceCols[i])
		b.WriteString(" = ?")
		args = append(args, now[i])
	}
	b.WriteString(" WHERE id = ?")
	return b.String(), append(args, now[0])
}

// sameValue reports whether two column values of deviceRow are equal;
// times compare as instants.
func sameValue(a, b any) bool {
	if ta, ok := a.(time.Time); ok {
		tb, ok := b.(time.Time)
		return ok && ta.Equal(tb)
	}
	return a == b
}

// writeSideDiff brings the side tables from old's rows to rec's, touching
// only rows that differ.
func writeSideDiff(ctx context.Context, t *txn, old, rec *record) error {
	for i, st := range sideTables {
		was := rowSet(old.side[i])
		now := rowSet(rec.side[i])
		del := "DELETE FROM " + st.name + " WHERE " + strings.Join(st.cols[:st.keyCols], " = ? AND ") + " = ?"
		// Deletes go first: a component that changed keeps its key.
		for k, row := range was {
			if _, keep := now[k]; keep {
				continue
			}
			if _, err := t.exec(ctx, del, row[:st.keyCols]...); err != nil {
				return fmt.Errorf("store: update %s: %w", st.name, err)
			}
		}
		add := newBulkRows(st.name, st.cols, len(now))
		for _, row := range rec.side[i] {
			if _, had := was[rowKey(row)]; !had {
				add.add(row...)
			}
		}
		if add.len() > 0 {
			if err := t.d.bulkInsert(ctx, t, add); err != nil {
				return fmt.Errorf("store: %w", err)
			}
		}
	}
	return nil
}

func rowSet(rows [][]any) map[string][]any {
	m := make(map[string][]any, len(rows))
	for _, r := range rows {
		m[rowKey(r)] = r
	}
	return m
}

// rowKey identifies a side row by its whole content.
func rowKey(row []any) string {
	parts := make([]string, len(row))
	for i, v := range row {
		parts[i] = fmt.Sprint(v)
	}
	return strings.Join(parts, "\x00")
}
