package store

import "database/sql"

// scanAll decodes every row with scan and closes rows. It returns an empty,
// non-nil slice when there are no rows, so API answers list "[]".
func scanAll[T any](rows *sql.Rows, scan func(scanner) (*T, error)) ([]T, error) {
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *v)
	}
	return out, rows.Err()
}
