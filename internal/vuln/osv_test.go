package vuln

import (
	"archive/tar"
	"archive/zip"
	"compress/gzip"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func affected(t *testing.T, rangesJSON string) *Affected {
	t.Helper()
	a, err := Parse([]byte(`{"id":"T-1","modified":"2026-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"Go","name":"p"},` + rangesJSON + `}]}`))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return &a.Affected[0]
}

// TestRangeSemantics checks the OSV evaluation rules: introduced is
// inclusive, fixed exclusive, last_affected inclusive, limit an upper
// bound, "0" below everything, several ranges and events as a union, and
// the versions list on its own.
func TestRangeSemantics(t *testing.T) {
	cases := []struct {
		name   string
		ranges string
		in     []string
		out    []string
	}{
		{"introduced-fixed", `"ranges":[{"type":"SEMVER","events":[{"introduced":"1.0.0"},{"fixed":"1.4.2"}]}]`,
			[]string{"1.0.0", "1.4.1", "1.4.2-rc.1", "v1.2.0"}, []string{"0.9.9", "1.4.2", "2.0.0", "1.0.0-beta"}},
		{"introduced-zero", `"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"0.9.1"}]}]`,
			[]string{"0.0.1", "0.9.0", "0.9.1-alpha"}, []string{"0.9.1", "1.0.0"}},
		{"last-affected", `"ranges":[{"type":"SEMVER","events":[{"introduced":"1.0.0"},{"last_affected":"1.2.0"}]}]`,
			[]string{"1.0.0", "1.2.0", "1.2.0+build5"}, []string{"1.2.1", "0.1.0"}},
		{"open-ended", `"ranges":[{"type":"SEMVER","events":[{"introduced":"2.0.0"}]}]`,
			[]string{"2.0.0", "99.0.0"}, []string{"1.9.9"}},
		{"limit", `"ranges":[{"type":"SEMVER","events":[{"introduced":"1.0.0"},{"limit":"1.5.0"}]}]`,
			[]string{"1.0.0", "1.4.9"}, []string{"1.5.0", "1.6.0", "0.5.0"}},
		{"limit-star", `"ranges":[{"type":"SEMVER","events":[{"introduced":"1.0.0"},{"limit":"*"}]}]`,
			[]string{"1.0.0", "9.0.0"}, []string{"0.1.0"}},
		{"two-intervals-one-range", `"ranges":[{"type":"SEMVER","events":[{"introduced":"1.0.0"},{"fixed":"1.1.0"},{"introduced":"2.0.0"},{"fixed":"2.3.1"}]}]`,
			[]string{"1.0.5", "2.0.0", "2.3.0"}, []string{"1.1.0", "1.9.0", "2.3.1", "3.0.0"}},
		{"events-unsorted", `"ranges":[{"type":"SEMVER","events":[{"fixed":"2.3.1"},{"introduced":"2.0.0"},{"fixed":"1.1.0"},{"introduced":"1.0.0"}]}]`,
			[]string{"1.0.5", "2.2.0"}, []string{"1.5.0", "2.4.0"}},
		{"multiple-ranges", `"ranges":[{"type":"SEMVER","events":[{"introduced":"1.0.0"},{"fixed":"1.1.0"}]},{"type":"SEMVER","events":[{"introduced":"3.0.0"},{"fixed":"3.0.2"}]}]`,
			[]string{"1.0.1", "3.0.1"}, []string{"2.0.0", "3.0.2"}},
		{"versions-list", `"versions":["0.3.1","weird-build"]`,
			[]string{"0.3.1", "weird-build"}, []string{"0.3.2", "0.3.0"}},
		{"git-ignored", `"ranges":[{"type":"GIT","repo":"https://x","events":[{"introduced":"abc123"}]}]`,
			nil, []string{"1.0.0", "abc123"}},
		{"ecosystem-semver-ecosystem", `"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"1.2.0"},{"fixed":"1.10.0"}]}]`,
			[]string{"1.2.0", "1.9.9"}, []string{"1.10.0", "1.1.0"}},
		{"unparsable-version", `"ranges":[{"type":"SEMVER","events":[{"introduced":"0"}]}]`,
			nil, []string{"not-a-version", ""}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			af := affected(t, c.ranges)
			for _, v := range c.in {
				if !af.Affects(v) {
					t.Errorf("%s should be affected", v)
				}
			}
			for _, v := range c.out {
				if af.Affects(v) {
					t.Errorf("%s should not be affected", v)
				}
			}
		})
	}
}

// TestEcosystemNaturalOrder: ECOSYSTEM ranges of ecosystems without a
// SemVer order (Debian, Alpine, vendor firmware) compare dotted numbers
// numerically, and a "~" suffix sorts before the release.
func TestEcosystemNaturalOrder(t *testing.T) {
	a, err := Parse([]byte(`{"id":"D-1","modified":"2026-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"Debian:12","name":"openssl"},
		"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"3.0.11-1~deb12u2"}]}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	af := &a.Affected[0]
	for v, want := range map[string]bool{
		"3.0.9-1": true, "3.0.11-1~deb12u1": true, "3.0.11-1~deb12u2": false, "3.0.11-1": false, "3.0.13-1": false, "3.0.2": true, "10.0": false,
	} {
		if got := af.Affects(v); got != want {
			t.Errorf("Affects(%s) = %v, want %v", v, got, want)
		}
	}
}

func TestSemverPrecedence(t *testing.T) {
	// The SemVer 2.0 specification's example order.
	order := []string{"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.1.0", "2.0.0"}
	for i := 1; i < len(order); i++ {
		a, _ := parseSemver(order[i-1])
		b, _ := parseSemver(order[i])
		if a.compare(b) >= 0 || b.compare(a) <= 0 {
			t.Errorf("%s should sort before %s", order[i-1], order[i])
		}
	}
	x, _ := parseSemver("1.2.3+build.7")
	y, _ := parseSemver("v1.2.3")
	if x.compare(y) != 0 {
		t.Error("build metadata and a leading v must not change precedence")
	}
	for _, bad := range []string{"", "1.2.3.4", "01.2.3", "1.x.0", "1.2.3-", "1.2.3-a..b"} {
		if _, err := parseSemver(bad); err == nil {
			t.Errorf("parseSemver(%q) accepted", bad)
		}
	}
}

func TestParseRefusesBadRecords(t *testing.T) {
	for name, doc := range map[string]string{
		"not json":           `{"id":`,
		"no id":              `{"modified":"2026-01-01T00:00:00Z"}`,
		"no modified":        `{"id":"X-1"}`,
		"bad modified":       `{"id":"X-1","modified":"yesterday"}`,
		"no package":         `{"id":"X-1","modified":"2026-01-01T00:00:00Z","affected":[{"ranges":[]}]}`,
		"bad range type":     `{"id":"X-1","modified":"2026-01-01T00:00:00Z","affected":[{"package":{"name":"p"},"ranges":[{"type":"SEMVERISH","events":[{"introduced":"0"}]}]}]}`,
		"two fields":         `{"id":"X-1","modified":"2026-01-01T00:00:00Z","affected":[{"package":{"name":"p"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0","fixed":"1.0.0"}]}]}]}`,
		"no introduced":      `{"id":"X-1","modified":"2026-01-01T00:00:00Z","affected":[{"package":{"name":"p"},"ranges":[{"type":"SEMVER","events":[{"fixed":"1.0.0"}]}]}]}`,
		"bad semver":         `{"id":"X-1","modified":"2026-01-01T00:00:00Z","affected":[{"package":{"name":"p"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"one"}]}]}]}`,
		"trailing data":      `{"id":"X-1","modified":"2026-01-01T00:00:00Z"} {}`,
		"empty events":       `{"id":"X-1","modified":"2026-01-01T00:00:00Z","affected":[{"package":{"name":"p"},"ranges":[{"type":"SEMVER","events":[]}]}]}`,
		"wrong type of list": `{"id":"X-1","modified":"2026-01-01T00:00:00Z","affected":{"package":{"name":"p"}}}`,
	} {
		if _, err := Parse([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestIndexMatch(t *testing.T) {
	recs, err := Load("testdata/osv")
	if err != nil {
		t.Fatal(err)
	}
	var advs []*Advisory
	for _, r := range recs {
		advs = append(advs, r.Advisory)
	}
	ix := NewIndex(advs)
	// Firmware has no ecosystem: matched by name, case-insensitively.
	ms := ix.Match(Software{Name: "ACME-fw", Version: "1.4.1", Source: "firmware"})
	if len(ms) != 1 || ms[0].AdvisoryID != "MUSTER-2026-0001" || strings.Join(ms[0].Fixed, ",") != "1.4.2" || ms[0].Aliases[0] != "CVE-2026-10001" {
		t.Fatalf("match = %+v", ms)
	}
	if ms := ix.Match(Software{Name: "acme-fw", Version: "1.4.2"}); len(ms) != 0 {
		t.Errorf("fixed version matched: %+v", ms)
	}
	// A component from a package URL matches only in its ecosystem.
	eco, name, ok := FromPURL("pkg:golang/github.com/acme/tlslib@v1.1.0")
	if !ok || eco != "Go" || name != "github.com/acme/tlslib" {
		t.Fatalf("FromPURL = %q %q %v", eco, name, ok)
	}
	if ms := ix.Match(Software{Ecosystem: eco, Name: name, Version: "1.1.0"}); len(ms) != 1 || strings.Join(ms[0].Fixed, ",") != "0.9.1" {
		t.Errorf("Go component: %+v", ms)
	}
	if ms := ix.Match(Software{Ecosystem: "npm", Name: name, Version: "1.1.0"}); len(ms) != 0 {
		t.Errorf("matched across ecosystems: %+v", ms)
	}
	if ms := ix.Match(Software{Name: "acme-fw"}); len(ms) != 0 {
		t.Errorf("a component without a version matched: %+v", ms)
	}
}

func TestWithdrawnAdvisoryIgnored(t *testing.T) {
	a, err := Parse([]byte(`{"id":"W-1","modified":"2026-01-01T00:00:00Z","withdrawn":"2026-02-01T00:00:00Z",
		"affected":[{"package":{"name":"p"},"versions":["1.0.0"]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if ms := NewIndex([]*Advisory{a}).Match(Software{Name: "p", Version: "1.0.0"}); len(ms) != 0 {
		t.Errorf("withdrawn advisory matched: %+v", ms)
	}
}

func TestLoadArchives(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{}
	for _, n := range []string{"MUSTER-2026-0001.json", "MUSTER-2026-0002.json"} {
		b, err := os.ReadFile(filepath.Join("testdata/osv", n))
		if err != nil {
			t.Fatal(err)
		}
		files["osv/"+n] = string(b)
	}
	zipPath := filepath.Join(dir, "osv.zip")
	writeZip(t, zipPath, files)
	tgzPath := filepath.Join(dir, "osv.tar.gz")
	writeTarGz(t, tgzPath, files)
	for _, p := range []string{"testdata/osv", zipPath, tgzPath, "testdata/osv/MUSTER-2026-0001.json"} {
		recs, err := Load(p)
		if err != nil {
			t.Fatalf("Load(%s): %v", p, err)
		}
		want := 2
		if strings.HasSuffix(p, ".json") {
			want = 1
		}
		if len(recs) != want {
			t.Errorf("Load(%s): %d records, want %d", p, len(recs), want)
		}
	}
}

// TestLoadNamesBadFile: a bad file fails the whole load with its name.
func TestLoadNamesBadFile(t *testing.T) {
	dir := t.TempDir()
	good, _ := os.ReadFile("testdata/osv/MUSTER-2026-0001.json")
	files := map[string]string{"a/good.json": string(good), "a/broken.json": `{"id": "X-1", "modified": "2026-01-01T00:00:00Z", "affected": [{"package": {"name": "p"}, "ranges": [{"type": "SEMVER", "events": [{"fixed": "1.0.0"}]}]}]}`}
	zipPath := filepath.Join(dir, "bad.zip")
	writeZip(t, zipPath, files)
	_, err := Load(zipPath)
	var fe *FileError
	if !errors.As(err, &fe) || !strings.HasSuffix(fe.File, "a/broken.json") || !strings.Contains(err.Error(), "introduced") {
		t.Fatalf("err = %v", err)
	}
	// Two files with one advisory id.
	writeZip(t, zipPath, map[string]string{"x.json": string(good), "y.json": string(good)})
	if _, err := Load(zipPath); err == nil || !strings.Contains(err.Error(), "also in") {
		t.Errorf("duplicate id: %v", err)
	}
	// Not an archive, no records, and a missing path.
	junk := filepath.Join(dir, "junk.tar.gz")
	os.WriteFile(junk, []byte("not gzip"), 0o600)
	if _, err := Load(junk); err == nil || !strings.Contains(err.Error(), "gzip") {
		t.Errorf("junk archive: %v", err)
	}
	if _, err := Load(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no OSV records") {
		t.Errorf("empty dir: %v", err)
	}
	if _, err := Load(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing path accepted")
	}
	txt := filepath.Join(dir, "list.txt")
	os.WriteFile(txt, []byte("x"), 0o600)
	if _, err := Load(txt); err == nil || !strings.Contains(err.Error(), ".zip") {
		t.Errorf("text file: %v", err)
	}
}

func writeZip(t *testing.T, path string, files map[string]string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	for n, body := range files {
		w, err := zw.Create(n)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(body))
	}
	if err := errors.Join(zw.Close(), f.Close()); err != nil {
		t.Fatal(err)
	}
}

func writeTarGz(t *testing.T, path string, files map[string]string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	for n, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(body))
	}
	if err := errors.Join(tw.Close(), gz.Close(), f.Close()); err != nil {
		t.Fatal(err)
	}
}
