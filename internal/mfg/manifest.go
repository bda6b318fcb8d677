package mfg

import (
	"errors"
	"fmt"
	"io"
)

// ManifestReader reads a manifest one row at a time, in constant memory
// whatever the manifest's length. A malformed row comes back as a Row with
// Err set and reading goes on, so one bad row never hides the good ones.
// A ManifestReader is not safe for concurrent use.
type ManifestReader struct {
	src rowSource
	err error // sticky: the input itself failed
}

// rowSource is one format's row decoder.
type rowSource interface {
	next() (Row, error)
}

// NewManifestReader returns a reader of a manifest in the given format. For
// CSV it reads the header at once, and fails if a column is unknown,
// repeated, or serial or model is missing.
func NewManifestReader(r io.Reader, format Format) (*ManifestReader, error) {
	switch format {
	case FormatCSV:
		src, err := newCSVSource(r)
		if err != nil {
			return nil, err
		}
		return &ManifestReader{src: src}, nil
	case FormatJSONL:
		return &ManifestReader{src: newJSONLSource(r)}, nil
	}
	return nil, fmt.Errorf("unknown manifest format %q: want %s or %s", format, FormatCSV, FormatJSONL)
}

// Next returns the next row. It returns io.EOF after the last row, and
// another error only when the input cannot be read any further; a row that
// cannot be parsed is returned with a nil error and Row.Err set.
func (m *ManifestReader) Next() (Row, error) {
	if m.err != nil {
		return Row{}, m.err
	}
	row, err := m.src.next()
	if err != nil {
		if !errors.Is(err, io.EOF) {
			err = fmt.Errorf("reading manifest: %w", err)
		}
		m.err = err
	}
	return row, err
}
