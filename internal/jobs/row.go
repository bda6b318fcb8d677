package jobs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/muster-iot/muster/internal/mfg"
)

// ManifestRow is one row of a job manifest. JSON lines use these field names;
// CSV
// uses them in snake_case (case, '_' and '-' are ignored), with groups and
// tags as ';'-separated lists (or JSON arrays), attributes as a JSON object,
// and attr.<key> columns for single attributes.
//
// A row names its device by id, or by serial with model and factory (which
// the job's defaults may supply).
type ManifestRow struct {
	ID               string            `json:"id,omitempty"`
	Factory          string            `json:"factory,omitempty"`
	Model            string            `json:"model,omitempty"`
	Serial           string            `json:"serial,omitempty"`
	HardwareRevision string            `json:"hardwareRevision,omitempty"`
	Batch            string            `json:"batch,omitempty"`
	Owner            string            `json:"owner,omitempty"`
	Site             string            `json:"site,omitempty"`
	Groups           []string          `json:"groups,omitempty"`
	Tags             []string          `json:"tags,omitempty"`
	Attributes       map[string]string `json:"attributes,omitempty"`
	// State is the target of a state job for this row.
	State string `json:"state,omitempty"`
	// Reason is recorded with this row's state change.
	Reason string `json:"reason,omitempty"`
}

// storedRow is a row as a chunk keeps it: with its manifest line, or the
// reason it could not be read.
type storedRow struct {
	ManifestRow
	Line  int    `json:"line"`
	Code  string `json:"code,omitempty"`
	Error string `json:"error,omitempty"`
}

// csvColumns lists the accepted CSV columns for error messages.
const csvColumns = "id, factory, model, serial, hardware_revision, batch, owner, site, groups, tags, attributes, state, reason, attr.<key>"

const attrColumnPrefix = "attr."

// rowReader turns manifest records into rows. It reads with internal/mfg's
// record reader, so both manifest kinds share one CSV and JSON lines
// reader (decision 0008).
type rowReader struct {
	rr      *mfg.RecordReader
	columns []string // CSV: the normalised name of each column
}

// newRowReader checks a CSV manifest's header at once: an unknown or
// repeated column fails the upload before anything is stored.
func newRowReader(r io.Reader, format mfg.Format) (*rowReader, error) {
	rr, err := mfg.NewRecordReader(r, format)
	if err != nil {
		return nil, err
	}
	rd := &rowReader{rr: rr}
	seen := map[string]bool{}
	for _, name := range rr.Header() {
		col := normalizeColumn(name)
		if !strings.HasPrefix(col, attrColumnPrefix) && !knownColumn(col) {
			return nil, fmt.Errorf("CSV header: unknown column %q: the columns are %s", name, csvColumns)
		}
		if col == attrColumnPrefix {
			return nil, fmt.Errorf("CSV header: column %q names no attribute: write attr.<key>", name)
		}
		if seen[col] {
			return nil, fmt.Errorf("CSV header: column %q appears twice", name)
		}
		seen[col] = true
		rd.columns = append(rd.columns, col)
	}
	return rd, nil
}

// normalizeColumn lower-cases a header name and drops '_' and '-' (not in
// the key of an attr.<key> column, which is kept as written).
func normalizeColumn(name string) string {
	if len(name) > len(attrColumnPrefix) && strings.EqualFold(name[:len(attrColumnPrefix)], attrColumnPrefix) {
		return attrColumnPrefix + name[len(attrColumnPrefix):]
	}
	return strings.NewReplacer("_", "", "-", "").Replace(strings.ToLower(name))
}

func knownColumn(col string) bool {
	switch col {
	case "id", "factory", "model", "serial", "hardwarerevision", "batch", "owner", "site", "groups", "tags", "attributes", "state", "reason":
		return true
	}
	return false
}

// next returns the next row; one that cannot be read has Code and Error
// set. It returns io.EOF after the last row.
func (rd *rowReader) next() (storedRow, error) {
	rec, err := rd.rr.Next()
	if err != nil {
		return storedRow{}, err
	}
	out := storedRow{Line: rec.Line}
	if rec.Err != nil {
		out.Serial = rec.Err.Serial
		out.Code, out.Error = CodeParse, rec.Err.Message
		return out, nil
	}
	if rec.JSON != nil {
		if e := mfg.DecodeJSONRecord(rec, &out.ManifestRow); e != nil {
			out.ManifestRow = ManifestRow{Serial: e.Serial}
			out.Code, out.Error = CodeParse, e.Message
		}
		return out, nil
	}
	for i, col := range rd.columns {
		if err := setCell(&out.ManifestRow, col, rec.Fields[i]); err != nil {
			out.Code, out.Error = CodeParse, fmt.Sprintf("column %s: %v", rd.rr.Header()[i], err)
			return out, nil
		}
	}
	return out, nil
}

// setCell stores one CSV cell in row; empty cells leave the field empty.
func setCell(row *ManifestRow, col, v string) error {
	if v == "" {
		return nil
	}
	if key, ok := strings.CutPrefix(col, attrColumnPrefix); ok {
		if row.Attributes == nil {
			row.Attributes = map[string]string{}
		}
		row.Attributes[key] = v
		return nil
	}
	switch col {
	case "id":
		row.ID = v
	case "factory":
		row.Factory = v
	case "model":
		row.Model = v
	case "serial":
		row.Serial = v
	case "hardwarerevision":
		row.HardwareRevision = v
	case "batch":
		row.Batch = v
	case "owner":
		row.Owner = v
	case "site":
		row.Site = v
	case "state":
		row.State = v
	case "reason":
		row.Reason = v
	case "groups":
		return listCell(v, &row.Groups)
	case "tags":
		return listCell(v, &row.Tags)
	case "attributes":
		attrs := map[string]string{}
		if err := mfg.DecodeJSONCell(v, &attrs); err != nil {
			return fmt.Errorf("want a JSON object of strings: %v", err)
		}
		if row.Attributes == nil {
			row.Attributes = attrs
			return nil
		}
		for k, a := range attrs {
			if _, set := row.Attributes[k]; !set {
				row.Attributes[k] = a
			}
		}
	}
	return nil
}

// listCell reads a ';'-separated list, or a JSON array of strings.
func listCell(v string, list *[]string) error {
	if strings.HasPrefix(v, "[") {
		return mfg.DecodeJSONCell(v, list)
	}
	for item := range strings.SplitSeq(v, ";") {
		if item = strings.TrimSpace(item); item != "" {
			*list = append(*list, item)
		}
	}
	return nil
}

// encodeRows writes rows as JSON lines: a chunk's stored form.
func encodeRows(rows []storedRow) ([]byte, error) {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	for i := range rows {
		if err := enc.Encode(&rows[i]); err != nil {
			return nil, fmt.Errorf("jobs: encode row of line %d: %w", rows[i].Line, err)
		}
	}
	return []byte(b.String()), nil
}

// decodeRows reads a chunk's stored rows.
func decodeRows(data []byte) ([]storedRow, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	var rows []storedRow
	for {
		var r storedRow
		if err := dec.Decode(&r); errors.Is(err, io.EOF) {
			return rows, nil
		} else if err != nil {
			return nil, fmt.Errorf("jobs: stored chunk is corrupt: %w", err)
		}
		rows = append(rows, r)
	}
}
