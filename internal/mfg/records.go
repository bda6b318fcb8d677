package mfg

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// Record is one undecoded record of a manifest whose rows are not
// manufacturing rows (bulk jobs have their own columns): the CSV cells, or
// the JSON line. It is valid until the next call of RecordReader.Next.
type Record struct {
	// Line is the 1-based line of the manifest where the record starts.
	Line int
	// Fields are a CSV record's cells, in header order; nil for JSON lines.
	Fields []string
	// JSON is a JSON lines record's line; nil for CSV.
	JSON []byte
	// Err is set, as a *RowError, when the record could not be read; the
	// reader goes on with the next one.
	Err *RowError
}

// RecordReader splits a CSV or JSON lines manifest into records with the
// same reader as ManifestReader (decision 0008: RFC 4180 quoting, quoted
// cells spanning lines, a per-record limit of MaxRowSize, a broken record
// costing one row), leaving the decoding of each record to the caller.
// Memory is bounded by about two records, whatever the manifest's length.
type RecordReader struct {
	csv    *csvSource
	lines  *lineReader
	header []string
	err    error
}

// NewRecordReader returns a reader of a manifest in the given format. For
// CSV it reads the header at once; Header returns it.
func NewRecordReader(r io.Reader, format Format) (*RecordReader, error) {
	switch format {
	case FormatCSV:
		s := &csvSource{lines: newLineReader(r, MaxRowSize)}
		line, fields, rowErr, err := s.record()
		switch {
		case errors.Is(err, io.EOF):
			return nil, errors.New("manifest is empty: its first line must be a CSV header naming the columns")
		case err != nil:
			return nil, fmt.Errorf("reading manifest: %w", err)
		case rowErr != nil:
			return nil, fmt.Errorf("CSV header on line %d: %s", line, rowErr.Message)
		}
		return &RecordReader{csv: s, header: append([]string(nil), fields...)}, nil
	case FormatJSONL:
		return &RecordReader{lines: newLineReader(r, MaxRowSize)}, nil
	}
	return nil, fmt.Errorf("unknown manifest format %q: want %s or %s", format, FormatCSV, FormatJSONL)
}

// Header is a CSV manifest's header; nil for JSON lines.
func (rr *RecordReader) Header() []string { return rr.header }

// Next returns the next non-blank record. It returns io.EOF after the last
// one, and another error only when the input cannot be read any further.
func (rr *RecordReader) Next() (Record, error) {
	if rr.err != nil {
		return Record{}, rr.err
	}
	rec, err := rr.next()
	if err != nil {
		if !errors.Is(err, io.EOF) {
			err = fmt.Errorf("reading manifest: %w", err)
		}
		rr.err = err
	}
	return rec, err
}

func (rr *RecordReader) next() (Record, error) {
	if rr.csv != nil {
		line, fields, rowErr, err := rr.csv.record()
		if err != nil {
			return Record{}, err
		}
		if rowErr != nil {
			return Record{Line: line, Err: rowErr}, nil
		}
		if len(fields) != len(rr.header) {
			return Record{Line: line, Err: parseError(line, "", nil,
				fmt.Sprintf("row has %d fields but the header has %d; quote cells that contain commas", len(fields), len(rr.header)))}, nil
		}
		return Record{Line: line, Fields: fields}, nil
	}
	for {
		b, err := rr.lines.next()
		n := rr.lines.line
		switch {
		case errors.Is(err, errLineTooLong):
			return Record{Line: n, Err: tooLargeError(n)}, nil
		case err != nil:
			return Record{}, err
		}
		if len(bytes.TrimSpace(b)) == 0 {
			continue
		}
		return Record{Line: n, JSON: b}, nil
	}
}

// DecodeJSONRecord decodes one JSON lines record into v strictly, as
// manifests are read: unknown fields and trailing data are errors. The
// error, if any, is a *RowError with a message for the manifest's author.
func DecodeJSONRecord(rec Record, v any) *RowError {
	if err := decodeStrict(bytes.NewReader(rec.JSON), v); err != nil {
		serial := serialOf(rec.JSON)
		return parseError(rec.Line, serial, err, describeJSONError(err))
	}
	return nil
}

// DecodeJSONCell decodes one CSV cell holding JSON into v strictly; the
// error message is meant for the manifest's author.
func DecodeJSONCell(cell string, v any) error {
	if err := decodeStrict(bytes.NewReader([]byte(cell)), v); err != nil {
		return errors.New(describeJSONError(err))
	}
	return nil
}
