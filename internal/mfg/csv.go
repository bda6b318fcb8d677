package mfg

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/muster-iot/muster/internal/fleet"
)

// columnKind is what a CSV column holds.
type columnKind int

const (
	colSerial columnKind = iota
	colModel
	colHardwareRevision
	colBatch
	colCSR
	colCertificate
	colQC
	colAssembly
	colBOM
	colFirmware
	colAttributes
	colQCTest // qc.<test>: one QC result, the cell being the result
)

// csvColumnNames lists the accepted columns for error messages.
const csvColumnNames = "serial, model, hardware_revision, batch, csr, certificate, qc, assembly, bom, firmware, attributes, qc.<test>"

// qcColumnPrefix starts a simple QC column such as qc.burn_in.
const qcColumnPrefix = "qc."

// columnKindOf maps a header name to its column. Case, '_' and '-' are
// ignored, so hardware_revision, hardwareRevision and Hardware-Revision are
// the same column: spreadsheets and JSON habits both work.
func columnKindOf(name string) (columnKind, bool) {
	key := strings.NewReplacer("_", "", "-", "").Replace(strings.ToLower(name))
	switch key {
	case "serial":
		return colSerial, true
	case "model":
		return colModel, true
	case "hardwarerevision":
		return colHardwareRevision, true
	case "batch":
		return colBatch, true
	case "csr":
		return colCSR, true
	case "certificate":
		return colCertificate, true
	case "qc":
		return colQC, true
	case "assembly":
		return colAssembly, true
	case "bom":
		return colBOM, true
	case "firmware":
		return colFirmware, true
	case "attributes":
		return colAttributes, true
	}
	return 0, false
}

// csvColumn is one header column.
type csvColumn struct {
	name string // as written in the header
	kind columnKind
	test string // the test name of a qc.<test> column
}

// csvSource reads CSV manifests (RFC 4180: comma-separated, fields with
// commas, quotes or line breaks enclosed in double quotes, a quote inside
// written twice). It parses records itself rather than with encoding/csv so
// that a stray quote costs one row, not the rest of the manifest, and so a
// record costs one string allocation for all its fields.
type csvSource struct {
	lines     *lineReader
	columns   []csvColumn
	serialCol int

	rec      []byte   // the current record: its lines joined by '\n'
	lineEnds []int    // end offset in rec of each of the record's lines
	values   []byte   // the record's unquoted field values, back to back
	ends     []int    // end offset in values of each field
	fields   []string // the fields, sharing one string
}

func newCSVSource(r io.Reader) (*csvSource, error) {
	s := &csvSource{lines: newLineReader(r, MaxRowSize)}
	line, fields, rowErr, err := s.record()
	switch {
	case errors.Is(err, io.EOF):
		return nil, fmt.Errorf("manifest is empty: its first line must be a CSV header naming the columns (%s)", csvColumnNames)
	case err != nil:
		return nil, fmt.Errorf("reading manifest: %w", err)
	case rowErr != nil:
		return nil, fmt.Errorf("CSV header on line %d: %s", line, rowErr.Message)
	}
	if err := s.setHeader(fields); err != nil {
		return nil, fmt.Errorf("CSV header on line %d: %w", line, err)
	}
	return s, nil
}

// setHeader maps the header's names to columns.
func (s *csvSource) setHeader(names []string) error {
	s.serialCol = -1
	haveModel := false
	seen := make(map[csvColumn]bool, len(names)) // keyed by kind and test
	for i, name := range names {
		col := csvColumn{name: name}
		if len(name) > len(qcColumnPrefix) && strings.EqualFold(name[:len(qcColumnPrefix)], qcColumnPrefix) {
			col.kind, col.test = colQCTest, name[len(qcColumnPrefix):]
		} else if kind, ok := columnKindOf(name); ok {
			col.kind = kind
		} else {
			return fmt.Errorf("unknown column %q: the columns are %s", name, csvColumnNames)
		}
		key := csvColumn{kind: col.kind, test: col.test}
		if seen[key] {
			return fmt.Errorf("column %q appears twice", name)
		}
		seen[key] = true
		switch col.kind {
		case colSerial:
			s.serialCol = i
		case colModel:
			haveModel = true
		}
		s.columns = append(s.columns, col)
	}
	if s.serialCol < 0 || !haveModel {
		return errors.New("the serial and model columns are required")
	}
	return nil
}

func (s *csvSource) next() (Row, error) {
	line, fields, rowErr, err := s.record()
	switch {
	case err != nil:
		return Row{}, err
	case rowErr != nil:
		return Row{Line: line, Err: rowErr}, nil
	}
	row := Row{Line: line}
	if s.serialCol < len(fields) {
		row.Serial = fields[s.serialCol]
	}
	if len(fields) != len(s.columns) {
		row.Err = parseError(line, row.Serial, nil, fmt.Sprintf("row has %d fields but the header has %d; quote cells that contain commas", len(fields), len(s.columns)))
		return row, nil
	}
	for i, col := range s.columns {
		if err := col.set(&row, fields[i]); err != nil {
			row.Err = parseError(line, row.Serial, err, fmt.Sprintf("column %s: %s", col.name, describeJSONError(err)))
			return row, nil
		}
	}
	return row, nil
}

// set stores one cell in the row. Empty cells leave the field empty.
func (c csvColumn) set(row *Row, v string) error {
	if v == "" {
		return nil
	}
	switch c.kind {
	case colSerial:
		row.Serial = v
	case colModel:
		row.Model = v
	case colHardwareRevision:
		row.HardwareRevision = v
	case colBatch:
		row.Batch = v
	case colCSR:
		row.CSR = v
	case colCertificate:
		row.Certificate = v
	case colQC:
		return appendCell(v, &row.QC)
	case colQCTest:
		// The short form: the cell is the result; no time or measurements.
		row.QC = append(row.QC, fleet.QCResult{Test: c.test, Result: v})
	case colAssembly:
		return appendCell(v, &row.Assembly)
	case colFirmware:
		return appendCell(v, &row.Firmware)
	case colAttributes:
		return decodeStrict(strings.NewReader(v), &row.Attributes)
	case colBOM:
		if !json.Valid([]byte(v)) {
			return errors.New("not valid JSON: the cell must hold a CycloneDX JSON document")
		}
		row.BOM = normalizeBOM(json.RawMessage(v))
	}
	return nil
}

// appendCell decodes a JSON array cell and appends it to list, so a qc cell
// and qc.<test> columns can be combined in one row.
func appendCell[T any](v string, list *[]T) error {
	var items []T
	if err := decodeStrict(strings.NewReader(v), &items); err != nil {
		return err
	}
	*list = append(*list, items...)
	return nil
}

// record reads the next non-blank CSV record. A record that cannot be
// parsed comes back as rowErr, and reading can go on after it; err is io.EOF
// at the end or a failure of the input.
func (s *csvSource) record() (line int, fields []string, rowErr *RowError, err error) {
	for {
		b, err := s.lines.next()
		switch {
		case errors.Is(err, errLineTooLong):
			return s.lines.line, nil, tooLargeError(s.lines.line), nil
		case err != nil:
			return 0, nil, nil, err
		}
		if len(bytes.TrimSpace(b)) == 0 {
			continue
		}
		start := s.lines.line
		s.rec = append(s.rec[:0], b...)
		s.lineEnds = append(s.lineEnds[:0], len(s.rec))
		// An odd number of quotes leaves a quoted field open: the record
		// goes on on the next line (a PEM CSR cell, for one).
		for open := oddQuotes(b); open; {
			b, err = s.lines.next()
			tooLong := errors.Is(err, errLineTooLong)
			if err != nil && !tooLong && !errors.Is(err, io.EOF) {
				return 0, nil, nil, err
			}
			if err != nil || len(s.rec)+1+len(b) > MaxRowSize {
				var pending []replayLine
				if !errors.Is(err, io.EOF) {
					pending = append(pending, replayLine{b: b, tooLong: tooLong})
				}
				s.reread(start, pending)
				return start, nil, s.unclosedError(start), nil
			}
			s.rec = append(append(s.rec, '\n'), b...)
			s.lineEnds = append(s.lineEnds, len(s.rec))
			open = !oddQuotes(b)
		}
		if err := s.split(); err != nil {
			if len(s.lineEnds) > 1 {
				s.reread(start, nil)
			}
			return start, nil, parseError(start, "", err, err.Error()), nil
		}
		return start, s.fields, nil, nil
	}
}

// unclosedError explains a record whose quote never closed. The first line
// alone often shows the real mistake, such as a quote inside an unquoted
// field; only a genuinely open quoted field gets the generic message.
func (s *csvSource) unclosedError(start int) *RowError {
	s.rec = s.rec[:s.lineEnds[0]]
	if err := s.split(); err != nil && !errors.Is(err, errUnclosedQuote) {
		return parseError(start, "", err, err.Error())
	}
	return parseError(start, "", errUnclosedQuote, fmt.Sprintf(
		"a quoted field opened on this line is not closed before the end of the manifest or within %d KiB; write a quote inside a quoted field as two quotes (\"\")",
		MaxRowSize>>10))
}

// errUnclosedQuote is a quoted field without its closing quote.
var errUnclosedQuote = errors.New("quoted field is not closed")

// reread makes the lines after the first line of the current record, plus
// pending, be read again. A record that spans lines only because of a
// stray quote then yields every later row instead of one error.
func (s *csvSource) reread(start int, pending []replayLine) {
	lines := make([]replayLine, 0, len(s.lineEnds)-1+len(pending))
	for i := 1; i < len(s.lineEnds); i++ {
		lines = append(lines, replayLine{b: s.rec[s.lineEnds[i-1]+1 : s.lineEnds[i]]})
	}
	s.lines.rewind(start, append(lines, pending...))
}

func oddQuotes(b []byte) bool { return bytes.Count(b, []byte{'"'})%2 == 1 }

// split parses the record in s.rec into s.fields. Blanks around fields are
// dropped, since no column's value may start or end with one.
func (s *csvSource) split() error {
	rec := s.rec
	s.values, s.ends = s.values[:0], s.ends[:0]
	for i := 0; ; {
		i = skipBlanks(rec, i)
		if i < len(rec) && rec[i] == '"' {
			i++
			for {
				j := bytes.IndexByte(rec[i:], '"')
				if j < 0 {
					return fmt.Errorf("field %d: %w", len(s.ends)+1, errUnclosedQuote)
				}
				s.values = append(s.values, rec[i:i+j]...)
				i += j + 1
				if i < len(rec) && rec[i] == '"' { // "" is one quote
					s.values = append(s.values, '"')
					i++
					continue
				}
				break
			}
			i = skipBlanks(rec, i)
			if i < len(rec) && rec[i] != ',' {
				return fmt.Errorf("field %d: unexpected %q after a closing quote; write a quote inside a quoted field as two quotes (\"\")", len(s.ends)+1, rec[i])
			}
		} else {
			j := bytes.IndexByte(rec[i:], ',')
			if j < 0 {
				j = len(rec) - i
			}
			v := bytes.TrimRight(rec[i:i+j], " \t")
			if bytes.IndexByte(v, '"') >= 0 {
				return fmt.Errorf("field %d: a quote in a field that does not start with one; enclose the whole field in quotes and double the quotes inside", len(s.ends)+1)
			}
			s.values = append(s.values, v...)
			i += j
		}
		s.ends = append(s.ends, len(s.values))
		if i >= len(rec) {
			break
		}
		i++ // the comma
	}
	all := string(s.values)
	s.fields = s.fields[:0]
	for k, end := range s.ends {
		start := 0
		if k > 0 {
			start = s.ends[k-1]
		}
		s.fields = append(s.fields, all[start:end])
	}
	return nil
}

func skipBlanks(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t') {
		i++
	}
	return i
}
