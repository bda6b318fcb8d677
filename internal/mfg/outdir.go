package mfg

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"strconv"
	"strings"
	"time"
)

// File names and modes of an output directory.
const (
	reportFile  = "report.csv"
	summaryFile = "summary.json"
	certMode    = 0o644
	keyMode     = 0o600 // minted private keys: readable by their owner only
)

// OutWriter writes a batch's results to a directory as they arrive:
// <serial>.crt for each certificate, <serial>.key (mode 0600) for each minted
// key, one report.csv line per row, and summary.json at Close. It holds one
// result at a time, never the batch. It is not safe for concurrent use.
//
// All files are opened through an os.Root, so nothing is written outside
// the directory even if it holds symbolic links; serials are escaped into
// file names (see SerialFileName).
type OutWriter struct {
	root    *os.Root
	report  *os.File
	csv     *csv.Writer
	summary Summary
	start   time.Time
	closed  bool
}

// NewOutWriter creates dir if needed (mode 0700, since it will hold keys)
// and starts a new report.csv in it, replacing an earlier run's.
func NewOutWriter(dir string) (*OutWriter, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating output directory: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("opening output directory: %w", err)
	}
	report, err := root.OpenFile(reportFile, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, certMode)
	if err != nil {
		root.Close()
		return nil, fmt.Errorf("creating report: %w", err)
	}
	w := &OutWriter{root: root, report: report, csv: csv.NewWriter(report), start: time.Now()}
	if err := w.csv.Write([]string{"line", "serial", "model", "device_id", "status", "code", "message"}); err != nil {
		w.Close()
		return nil, fmt.Errorf("writing report: %w", err)
	}
	return w, nil
}

// Write records one result: its certificate and key files, when it has
// them, and its report line. The report line is written even when a file
// cannot be, so the report stays complete; the file's error is returned.
func (w *OutWriter) Write(r Result) error {
	if w.closed {
		return errors.New("output writer is closed")
	}
	fileErr := w.writeFiles(r)
	w.summary.Add(r)
	err := w.csv.Write([]string{strconv.Itoa(r.Line), safeCell(r.Serial), safeCell(r.Model), r.DeviceID,
		r.Status, r.Code, safeCell(r.Message)})
	if err != nil {
		return errors.Join(fileErr, fmt.Errorf("writing report: %w", err))
	}
	return fileErr
}

func (w *OutWriter) writeFiles(r Result) error {
	if r.CertificatePEM == "" && r.KeyPEM == "" {
		return nil
	}
	name, err := SerialFileName(r.Serial)
	if err != nil {
		return fmt.Errorf("line %d: %w", r.Line, err)
	}
	if r.CertificatePEM != "" {
		if err := writeFileAtomic(w.root, name+".crt", withNewline(r.CertificatePEM), certMode); err != nil {
			return err
		}
	}
	if r.KeyPEM != "" {
		if err := writeFileAtomic(w.root, name+".key", withNewline(r.KeyPEM), keyMode); err != nil {
			return err
		}
	}
	return nil
}

// Summary returns the counts so far.
func (w *OutWriter) Summary() Summary {
	s := w.summary
	s.ErrorsByCode = maps.Clone(s.ErrorsByCode)
	return s
}

// Close finishes the report and writes summary.json. Calling it again does
// nothing.
func (w *OutWriter) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	w.summary.Finish(time.Since(w.start))
	w.csv.Flush()
	errs := []error{w.csv.Error(), w.report.Close()}
	if summary, err := json.MarshalIndent(w.summary, "", "  "); err != nil {
		errs = append(errs, err)
	} else {
		errs = append(errs, writeFileAtomic(w.root, summaryFile, append(summary, '\n'), certMode))
	}
	errs = append(errs, w.root.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("finishing output directory: %w", err)
	}
	return nil
}

// writeFileAtomic writes name through a temporary file and a rename, so a
// crash never leaves a truncated certificate or key under the real name. The
// temporary file is created with mode already set: a key is never readable
// by others, not even for a moment.
func writeFileAtomic(root *os.Root, name string, data []byte, mode fs.FileMode) error {
	tmp := name + ".tmp"
	if err := root.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = root.Rename(tmp, name)
	}
	if err != nil {
		_ = root.Remove(tmp)
		return fmt.Errorf("writing %s: %w", name, err)
	}
	return nil
}

func withNewline(s string) []byte {
	if strings.HasSuffix(s, "\n") {
		return []byte(s)
	}
	return []byte(s + "\n")
}

// safeCell defuses spreadsheet formulas: report.csv is opened in
// spreadsheets, and a cell from the manifest such as =HYPERLINK(...) must
// show as text, not run.
func safeCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
