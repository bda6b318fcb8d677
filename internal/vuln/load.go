package vuln

import (
	"archive/tar"
	"archive/zip"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Limits of a load, so a hostile archive cannot exhaust memory.
const (
	// MaxRecordSize bounds one OSV file.
	MaxRecordSize = 4 << 20
	// MaxRecords bounds the records of one load.
	MaxRecords = 200000
)

// Record is one advisory as loaded, with the file it came from and its
// bytes as they were.
type Record struct {
	File     string
	Advisory *Advisory
	Raw      []byte
}

// FileError names the file a load failed on.
type FileError struct {
	File string
	Err  error
}

func (e *FileError) Error() string { return e.File + ": " + e.Err.Error() }
func (e *FileError) Unwrap() error { return e.Err }

// Load reads every *.json file of a directory (recursively), a .zip
// archive, or a .tar.gz/.tgz archive, and parses each as an OSV record.
// It fails on the first bad file, naming it, and on two files with the
// same advisory id, so a load is all or nothing.
func Load(path string) ([]Record, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("read advisories: %w", err)
	}
	var recs []Record
	add := func(name string, r io.Reader) error {
		if len(recs) >= MaxRecords {
			return fmt.Errorf("more than %d advisories in one import; split it", MaxRecords)
		}
		raw, err := io.ReadAll(io.LimitReader(r, MaxRecordSize+1))
		if err != nil {
			return &FileError{File: name, Err: err}
		}
		if len(raw) > MaxRecordSize {
			return &FileError{File: name, Err: fmt.Errorf("larger than %d bytes", MaxRecordSize)}
		}
		a, err := Parse(raw)
		if err != nil {
			return &FileError{File: name, Err: err}
		}
		recs = append(recs, Record{File: name, Advisory: a, Raw: raw})
		return nil
	}
	lower := strings.ToLower(path)
	switch {
	case info.IsDir():
		err = loadDir(path, add)
	case strings.HasSuffix(lower, ".zip"):
		err = loadZip(path, add)
	case strings.HasSuffix(lower, ".tar.gz"), strings.HasSuffix(lower, ".tgz"):
		err = loadTarGz(path, add)
	case strings.HasSuffix(lower, ".json"):
		err = loadFile(path, add)
	default:
		return nil, fmt.Errorf("%s: give a directory, a .zip, a .tar.gz or a .json file of OSV records", path)
	}
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("%s: no OSV records (*.json) found", path)
	}
	seen := make(map[string]string, len(recs))
	for _, r := range recs {
		if first, dup := seen[r.Advisory.ID]; dup {
			return nil, &FileError{File: r.File, Err: fmt.Errorf("advisory %s is also in %s", r.Advisory.ID, first)}
		}
		seen[r.Advisory.ID] = r.File
	}
	return recs, nil
}

func isRecord(name string) bool {
	base := filepath.Base(name)
	return strings.HasSuffix(strings.ToLower(base), ".json") && !strings.HasPrefix(base, ".")
}

func loadFile(path string, add func(string, io.Reader) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read advisories: %w", err)
	}
	defer f.Close()
	return add(path, f)
}

func loadDir(dir string, add func(string, io.Reader) error) error {
	var names []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && isRecord(p) {
			names = append(names, p)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read advisories: %w", err)
	}
	slices.Sort(names)
	for _, n := range names {
		if err := loadFile(n, add); err != nil {
			return err
		}
	}
	return nil
}

func loadZip(path string, add func(string, io.Reader) error) error {
	z, err := zip.OpenReader(path)
	if err != nil {
		return fmt.Errorf("%s: not a readable zip archive: %w", path, err)
	}
	defer z.Close()
	for _, f := range z.File {
		if f.FileInfo().IsDir() || !isRecord(f.Name) {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			return &FileError{File: path + ":" + f.Name, Err: err}
		}
		err = add(path+":"+f.Name, rc)
		rc.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

func loadTarGz(path string, add func(string, io.Reader) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read advisories: %w", err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return fmt.Errorf("%s: not a gzip archive: %w", path, err)
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: not a readable tar archive: %w", path, err)
		}
		if h.Typeflag != tar.TypeReg || !isRecord(h.Name) {
			continue
		}
		if err := add(path+":"+h.Name, tr); err != nil {
			return err
		}
	}
}
