package mfg

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
)

// jsonlSource reads JSON lines manifests: one JSON object per line with the
// field names of Row's JSON tags.
type jsonlSource struct {
	lines *lineReader
}

func newJSONLSource(r io.Reader) *jsonlSource {
	return &jsonlSource{lines: newLineReader(r, MaxRowSize)}
}

func (s *jsonlSource) next() (Row, error) {
	for {
		line, err := s.lines.next()
		n := s.lines.line
		switch {
		case errors.Is(err, errLineTooLong):
			return Row{Line: n, Err: tooLargeError(n)}, nil
		case err != nil:
			return Row{}, err
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var row Row
		if err := decodeStrict(bytes.NewReader(line), &row); err != nil {
			serial := serialOf(line)
			return Row{Line: n, Serial: serial, Err: parseError(n, serial, err, describeJSONError(err))}, nil
		}
		row.Line = n
		row.BOM = normalizeBOM(row.BOM)
		return row, nil
	}
}

// serialOf digs the serial out of a line that failed strict decoding, so that
// its error can name the unit. It is only called on errors.
func serialOf(line []byte) string {
	var v struct {
		Serial string `json:"serial"`
	}
	if json.Unmarshal(line, &v) != nil {
		return ""
	}
	return v.Serial
}
