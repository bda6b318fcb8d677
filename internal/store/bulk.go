package store

import (
	"context"
	"fmt"
	"strings"
)

// bulkRows is a batch of rows for one table, flattened row after row so a
// batch of thousands costs one allocation per table rather than one per row.
type bulkRows struct {
	table string
	cols  []string
	vals  []any
}

func newBulkRows(table string, cols []string, capRows int) *bulkRows {
	return &bulkRows{table: table, cols: cols, vals: make([]any, 0, capRows*len(cols))}
}

// add appends one row; it must have one value per column.
func (b *bulkRows) add(vals ...any) {
	b.vals = append(b.vals, vals...)
}

func (b *bulkRows) len() int { return len(b.vals) / len(b.cols) }

// maxRowsPerInsert bounds one multi-row INSERT: past a few hundred rows the
// statement grows without getting faster.
const maxRowsPerInsert = 500

// insertMultiRow writes rows with INSERT ... VALUES (...), (...) statements,
// each prepared once per transaction and reused for every full chunk.
func insertMultiRow(ctx context.Context, t *txn, d dialect, rows *bulkRows) error {
	width := len(rows.cols)
	per := min(maxRowsPerInsert, d.maxParams()/width)
	total := rows.len()
	for start := 0; start < total; start += per {
		n := min(per, total-start)
		stmt, err := t.prepare(ctx, insertSQL(rows.table, rows.cols, n))
		if err != nil {
			return err
		}
		if _, err := stmt.ExecContext(ctx, rows.vals[start*width:(start+n)*width]...); err != nil {
			return fmt.Errorf("insert into %s: %w", rows.table, err)
		}
	}
	return nil
}

// insertSQL is INSERT INTO table (cols) VALUES with n rows of placeholders.
func insertSQL(table string, cols []string, n int) string {
	row := "(" + strings.TrimSuffix(strings.Repeat("?,", len(cols)), ",") + ")"
	var b strings.Builder
	b.Grow(len(table) + 32 + n*(len(row)+1))
	b.WriteString("INSERT INTO ")
	b.WriteString(table)
	b.WriteString(" (")
	b.WriteString(strings.Join(cols, ", "))
	b.WriteString(") VALUES ")
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(row)
	}
	return b.String()
}
