package mfg

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
)

// Format is a manifest's encoding.
type Format string

// The manifest formats.
const (
	FormatCSV   Format = "csv"   // a header line, then one row per record
	FormatJSONL Format = "jsonl" // one JSON object per line
)

// ParseFormat returns the format named s, as given to a --format flag.
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "csv":
		return FormatCSV, nil
	case "jsonl", "ndjson":
		return FormatJSONL, nil
	}
	return "", fmt.Errorf("unknown manifest format %q: want csv or jsonl", s)
}

// DetectFormat guesses a manifest's format from its file name and, when the
// name does not tell (stdin, no extension), from its first bytes, for which
// a few hundred are plenty (bufio.Reader.Peek gives them without consuming).
func DetectFormat(name string, firstBytes []byte) (Format, error) {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".csv":
		return FormatCSV, nil
	case ".jsonl", ".ndjson":
		return FormatJSONL, nil
	}
	head := bytes.TrimLeft(bytes.TrimPrefix(firstBytes, utf8BOM), " \t\r\n")
	switch {
	case len(head) == 0:
		return "", errors.New("cannot tell the manifest's format: it is empty; give a .csv or .jsonl file")
	case head[0] == '{':
		return FormatJSONL, nil
	case head[0] == '[':
		return "", errors.New("manifest is a JSON array: write one JSON object per line (JSON lines) instead, so it can be streamed")
	}
	return FormatCSV, nil
}
