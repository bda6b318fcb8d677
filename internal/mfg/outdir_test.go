package mfg

import (
	"encoding/csv"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestSerialFileName(t *testing.T) {
	cases := map[string]string{
		"SN-000001_a.b": "SN-000001_a.b",
		"acme/SN:1":     "acme%2FSN%3A1",
		"a+b":           "a%2Bb",
		"100%":          "100%25",
		"..":            "%2E.",
		".hidden":       "%2Ehidden",
		"../../etc/x":   "%2E.%2F..%2Fetc%2Fx",
		`a\b`:           "a%5Cb",
		"CON":           "%43ON",
		"nul.txt":       "%6Eul.txt",
		"COM7":          "%43OM7",
		"COM0":          "COM0",
		"CONSOLE":       "CONSOLE",
	}
	seen := map[string]string{}
	for serial, want := range cases {
		got, err := SerialFileName(serial)
		if err != nil || got != want {
			t.Errorf("SerialFileName(%q) = %q, %v; want %q", serial, got, err, want)
		}
		if strings.ContainsAny(got, `/\`) || got == "." || got == ".." {
			t.Errorf("SerialFileName(%q) = %q is not a plain file name", serial, got)
		}
		if other, dup := seen[got]; dup {
			t.Errorf("%q and %q share the file name %q", serial, other, got)
		}
		seen[got] = serial
	}
	for _, bad := range []string{"", strings.Repeat("/", 100)} {
		if _, err := SerialFileName(bad); err == nil {
			t.Errorf("SerialFileName(%q) succeeded", bad)
		}
	}
}

func TestOutWriter(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	w, err := NewOutWriter(dir)
	if err != nil {
		t.Fatal(err)
	}
	results := []Result{
		{Line: 2, Serial: "acme/SN:1", Model: "M1", DeviceID: "dev_1", Status: StatusOK, CertificatePEM: "CERT1", KeyPEM: "KEY1\n"},
		{Line: 3, Serial: "SN2", Model: "M1", DeviceID: "dev_2", Status: StatusExists, CertificatePEM: "CERT2\n"},
		{Line: 4, Serial: "=HYPERLINK(\"x\")", Model: "M1", Status: StatusError, Code: CodeScope, Message: "-outside, \"quoted\""},
		{Line: 5, Status: StatusError, Code: CodeParse, Message: "broken\nquote"},
	}
	for _, r := range results {
		if err := w.Write(r); err != nil {
			t.Fatalf("Write(line %d): %v", r.Line, err)
		}
	}
	if s := w.Summary(); s.Rows != 4 || s.Errors != 2 {
		t.Errorf("Summary = %+v", s)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := w.Write(results[0]); err == nil {
		t.Error("Write after Close succeeded")
	}

	checkFile(t, dir, "acme%2FSN%3A1.crt", "CERT1\n", 0o644)
	checkFile(t, dir, "acme%2FSN%3A1.key", "KEY1\n", 0o600)
	checkFile(t, dir, "SN2.crt", "CERT2\n", 0o644)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{"SN2.crt", "acme%2FSN%3A1.crt", "acme%2FSN%3A1.key", "report.csv", "summary.json"}; !reflect.DeepEqual(names, want) {
		t.Errorf("files = %v, want %v (no key for an existing device, no temporary files)", names, want)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("directory mode = %v, %v; want 0700", fi.Mode().Perm(), err)
	}

	f, err := os.Open(filepath.Join(dir, "report.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	records, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		{"line", "serial", "model", "device_id", "status", "code", "message"},
		{"2", "acme/SN:1", "M1", "dev_1", "ok", "", ""},
		{"3", "SN2", "M1", "dev_2", "exists", "", ""},
		{"4", "'=HYPERLINK(\"x\")", "M1", "", "error", "scope", "'-outside, \"quoted\""},
		{"5", "", "", "", "error", "parse", "broken\nquote"},
	}
	if !reflect.DeepEqual(records, want) {
		t.Errorf("report.csv =\n%q\nwant\n%q", records, want)
	}

	var s Summary
	b, err := os.ReadFile(filepath.Join(dir, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	if s.Rows != 4 || s.OK != 1 || s.Existing != 1 || s.Errors != 2 || s.ErrorsByCode[CodeScope] != 1 || s.Elapsed <= 0 {
		t.Errorf("summary.json = %s", b)
	}
}

func checkFile(t *testing.T, dir, name, content string, mode fs.FileMode) {
	t.Helper()
	path := filepath.Join(dir, name)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Errorf("%s: %v", name, err)
		return
	}
	if string(b) != content {
		t.Errorf("%s = %q, want %q", name, b, content)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	// The umask may only take permissions away; a key must be 0600 exactly.
	if perm := fi.Mode().Perm(); perm&^mode != 0 || (mode == 0o600 && perm != 0o600) || !fi.Mode().IsRegular() {
		t.Errorf("%s mode = %v, want at most %v", name, fi.Mode(), mode)
	}
}

func TestOutWriterRerunReplacesReport(t *testing.T) {
	dir := t.TempDir()
	for run := range 2 {
		w, err := NewOutWriter(dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Write(Result{Line: 2, Serial: "SN1", Status: StatusOK, CertificatePEM: "C"}); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "report.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "\n"); n != 2 {
		t.Errorf("report.csv after two runs has %d lines, want 2:\n%s", n, b)
	}
}

func TestOutWriterStaysInsideDir(t *testing.T) {
	outside := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(outside, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(dir, "evil.crt")); err != nil {
		t.Skipf("symlinks: %v", err)
	}
	w, err := NewOutWriter(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(Result{Line: 2, Serial: "evil", Status: StatusOK, CertificatePEM: "CERT"}); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(Result{Line: 3, Status: StatusOK, CertificatePEM: "CERT"}); err == nil || !strings.Contains(err.Error(), "empty serial") {
		t.Errorf("certificate without serial: err = %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(outside); string(b) != "precious" {
		t.Errorf("file outside the directory was overwritten: %q", b)
	}
	checkFile(t, dir, "evil.crt", "CERT\n", 0o644)
	if b, _ := os.ReadFile(filepath.Join(dir, "report.csv")); !strings.Contains(string(b), "\n3,") {
		t.Errorf("the row whose file failed is missing from the report:\n%s", b)
	}

	// A report.csv planted as a link out of the directory is refused.
	dir2 := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(dir2, "report.csv")); err != nil {
		t.Fatal(err)
	}
	if _, err := NewOutWriter(dir2); err == nil {
		t.Error("NewOutWriter followed a link out of the directory")
	}
	if b, _ := os.ReadFile(outside); string(b) != "precious" {
		t.Errorf("file outside the directory was truncated: %q", b)
	}
}

func TestOutWriterBadDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := NewOutWriter(file); err == nil {
		t.Errorf("NewOutWriter(a file) = %v", err)
	}
}
