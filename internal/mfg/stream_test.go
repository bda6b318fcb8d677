package mfg

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"testing"
)

// generator produces a manifest of n rows (or endless, when n < 0) on the
// fly, so tests can read 100,000 rows without holding them.
type generator struct {
	format Format
	n, i   int
	buf    bytes.Buffer
	size   int64 // bytes produced
}

func newGenerator(format Format, n int) *generator {
	g := &generator{format: format, n: n}
	if format == FormatCSV {
		g.buf.WriteString("serial,model,hardware_revision,qc.visual,qc,attributes\n")
	}
	return g
}

func (g *generator) Read(p []byte) (int, error) {
	for g.buf.Len() < len(p) && (g.n < 0 || g.i < g.n) {
		g.i++
		switch g.format {
		case FormatCSV:
			fmt.Fprintf(&g.buf, "SN-%08d,M1,r2,pass,\"[{\"\"test\"\":\"\"burn_in\"\",\"\"result\"\":\"\"pass\"\"}]\",\"{\"\"line\"\":\"\"4\"\"}\"\n", g.i)
		case FormatJSONL:
			fmt.Fprintf(&g.buf, `{"serial":"SN-%08d","model":"M1","hardwareRevision":"r2","qc":[{"test":"visual","result":"pass"},{"test":"burn_in","result":"pass"}],"attributes":{"line":"4"}}`+"\n", g.i)
		}
	}
	if g.buf.Len() == 0 {
		return 0, io.EOF
	}
	n, err := g.buf.Read(p)
	g.size += int64(n)
	return n, err
}

// read reads n rows and fails on any row error.
func read(t testing.TB, mr *ManifestReader, n int) {
	t.Helper()
	for range n {
		row, err := mr.Next()
		if err != nil || row.Err != nil || len(row.QC) != 2 {
			t.Fatalf("row %+v, %v", row, err)
		}
	}
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestManifestFlatMemory reads 100,000 rows and checks that the heap after
// the last row is no bigger than after the first thousand: memory does not
// grow with the manifest.
func TestManifestFlatMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("reads 100,000 rows")
	}
	for _, format := range []Format{FormatCSV, FormatJSONL} {
		t.Run(string(format), func(t *testing.T) {
			const total = 100_000
			gen := newGenerator(format, total)
			mr, err := NewManifestReader(gen, format)
			if err != nil {
				t.Fatal(err)
			}
			read(t, mr, 1000)
			before := heapInUse()
			read(t, mr, total-1000)
			after := heapInUse()
			if _, err := mr.Next(); !errors.Is(err, io.EOF) {
				t.Fatalf("after %d rows: %v, want EOF", total, err)
			}
			grew := int64(after) - int64(before)
			t.Logf("%s: %d rows, %d MiB read, heap grew %d KiB", format, total, gen.size>>20, grew>>10)
			if grew > 512<<10 {
				t.Errorf("heap grew by %d KiB over %d rows (%d MiB of manifest)", grew>>10, total-1000, gen.size>>20)
			}
			runtime.KeepAlive(mr)
		})
	}
}

// TestManifestAllocsPerRow bounds the allocations of one row, so a change
// that makes rows expensive shows up here.
func TestManifestAllocsPerRow(t *testing.T) {
	for _, c := range []struct {
		format Format
		max    float64
	}{{FormatCSV, 40}, {FormatJSONL, 40}} {
		mr, err := NewManifestReader(newGenerator(c.format, -1), c.format)
		if err != nil {
			t.Fatal(err)
		}
		allocs := testing.AllocsPerRun(2000, func() { read(t, mr, 1) })
		t.Logf("%s: %.1f allocations per row", c.format, allocs)
		if allocs > c.max {
			t.Errorf("%s: %.1f allocations per row, want at most %v", c.format, allocs, c.max)
		}
	}
}

func benchmarkManifest(b *testing.B, format Format) {
	gen := newGenerator(format, -1)
	mr, err := NewManifestReader(gen, format)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := gen.size
	for b.Loop() {
		read(b, mr, 1)
	}
	b.SetBytes((gen.size - start) / int64(max(b.N, 1)))
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkManifestCSV reads CSV rows; one op is one row.
func BenchmarkManifestCSV(b *testing.B) { benchmarkManifest(b, FormatCSV) }

// BenchmarkManifestJSONL reads JSON lines rows; one op is one row.
func BenchmarkManifestJSONL(b *testing.B) { benchmarkManifest(b, FormatJSONL) }
