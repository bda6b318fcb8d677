package mfg

import (
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
)

// want describes one row read from a manifest.
type want struct {
	line   int
	serial string
	code   string // "" for a parsed row
	msg    string // part of the error message
}

func checkRows(t *testing.T, rows []Row, wants []want) {
	t.Helper()
	if len(rows) != len(wants) {
		for _, r := range rows {
			t.Logf("line %d serial %q err %v", r.Line, r.Serial, r.Err)
		}
		t.Fatalf("got %d rows, want %d", len(rows), len(wants))
	}
	for i, w := range wants {
		r := rows[i]
		if r.Line != w.line || r.Serial != w.serial || rowCode(t, r) != w.code {
			t.Errorf("row %d: line %d serial %q code %q (err %v), want line %d serial %q code %q",
				i, r.Line, r.Serial, rowCode(t, r), r.Err, w.line, w.serial, w.code)
		}
		if w.msg != "" && (r.Err == nil || !strings.Contains(r.Err.Error(), w.msg)) {
			t.Errorf("row %d: err %v, want mention of %q", i, r.Err, w.msg)
		}
	}
}

func TestCSVRowErrors(t *testing.T) {
	const header = "serial,model,qc\n"
	big := strings.Repeat("x", MaxRowSize+10)
	cases := []struct {
		name     string
		manifest string
		want     []want
	}{
		{"bare quote mid-file", header + "SN1,M1,\nSN2,M\"1,\nSN3,M1,\n",
			[]want{{2, "SN1", "", ""}, {3, "", CodeParse, "quote in a field"}, {4, "SN3", "", ""}}},
		{"unclosed quote mid-file", header + "SN1,M1,\nSN2,\"M1,\nSN3,M1,\nSN4,M1,\n",
			[]want{{2, "SN1", "", ""}, {3, "", CodeParse, "not closed"}, {4, "SN3", "", ""}, {5, "SN4", "", ""}}},
		{"unclosed quote on the first row", header + "SN2,\"M1,\nSN3,M1,\n",
			[]want{{2, "", CodeParse, "not closed"}, {3, "SN3", "", ""}}},
		{"unclosed quote closed by a later quoted cell", header + "SN1,\"M1,\nSN2,M1," + csvQuote(`[{"test":"a","result":"pass"}]`) + "\nSN3,M1,\"x\ny\"\nSN4,M1,\n",
			[]want{{2, "", CodeParse, ""}, {3, "SN2", "", ""}, {4, "SN3", CodeParse, "column qc"}, {6, "SN4", "", ""}}},
		{"text after closing quote", header + "SN1,\"M1\"x,\nSN2,M1,\n",
			[]want{{2, "", CodeParse, "after a closing quote"}, {3, "SN2", "", ""}}},
		{"too few fields", header + "SN1,M1\nSN2,M1,\n",
			[]want{{2, "SN1", CodeParse, "2 fields but the header has 3"}, {3, "SN2", "", ""}}},
		{"too many fields", header + "SN1,M1,,x\n",
			[]want{{2, "SN1", CodeParse, "4 fields"}}},
		{"not JSON", header + "SN1,M1,pass\nSN2,M1,\n",
			[]want{{2, "SN1", CodeParse, "column qc: not valid JSON"}, {3, "SN2", "", ""}}},
		{"JSON of the wrong type", header + "SN1,M1," + csvQuote(`[{"test":1}]`) + "\n",
			[]want{{2, "SN1", CodeParse, `field "test": got JSON number, want a string`}}},
		{"JSON unknown field", header + "SN1,M1," + csvQuote(`[{"test":"a","reslt":"pass"}]`) + "\n",
			[]want{{2, "SN1", CodeParse, `unknown field "reslt"`}}},
		{"JSON trailing data", header + "SN1,M1," + csvQuote(`[] []`) + "\n",
			[]want{{2, "SN1", CodeParse, "after the JSON value"}}},
		{"bad time", header + "SN1,M1," + csvQuote(`[{"test":"a","result":"pass","at":"yesterday"}]`) + "\n",
			[]want{{2, "SN1", CodeParse, "RFC 3339"}}},
		{"oversize line", header + "SN1,M1,\nSN2,M1," + big + "\nSN3,M1,\n",
			[]want{{2, "SN1", "", ""}, {3, "", CodeTooLarge, "larger than 1024 KiB"}, {4, "SN3", "", ""}}},
		{"blank lines and CRLF", header + "\r\nSN1,M1,\r\n   \r\n\r\nSN2,M1,\r\n",
			[]want{{3, "SN1", "", ""}, {6, "SN2", "", ""}}},
		{"no final newline", header + "SN1,M1,",
			[]want{{2, "SN1", "", ""}}},
		{"unclosed quote at the end", header + "SN1,M1,\"[",
			[]want{{2, "", CodeParse, "not closed"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			checkRows(t, readAll(t, c.manifest, FormatCSV), c.want)
		})
	}
}

// A quoted cell over the size limit is refused; its lines are then read as
// rows of their own (each refused, being garbage) and reading goes on.
func TestCSVOversizeQuotedRecord(t *testing.T) {
	lines := MaxRowSize/1000 + 50
	manifest := "serial,model,qc\nSN1,M1,\"" + strings.Repeat(strings.Repeat("y", 999)+"\n", lines) + "\"\nSN3,M1,\n"
	rows := readAll(t, manifest, FormatCSV)
	first, last := rows[0], rows[len(rows)-1]
	if first.Line != 2 || rowCode(t, first) != CodeParse || !strings.Contains(first.Err.Error(), "not closed") {
		t.Errorf("first row: line %d err %v", first.Line, first.Err)
	}
	if last.Line != lines+3 || last.Serial != "SN3" || last.Err != nil {
		t.Errorf("last row: line %d serial %q err %v, want line %d SN3", last.Line, last.Serial, last.Err, lines+3)
	}
	for _, r := range rows[1 : len(rows)-1] {
		if rowCode(t, r) != CodeParse {
			t.Fatalf("line %d: code %q, want %q", r.Line, rowCode(t, r), CodeParse)
		}
	}
}

func TestCSVFields(t *testing.T) {
	csr := newCSRPEM(t, "SN-000001")
	manifest := "\ufeffSerial, Model ,hardwareRevision,batch,csr,qc.burn_in,qc,qc.Visual,attributes,bom,assembly,firmware\r\n" +
		`SN-000001 , M1,r2,b7,` + csvQuote(strings.ReplaceAll(csr, "\n", "\r\n")) + `,pass,` + csvQuote(`[{"test":"rf","result":"fail","measurements":{"dbm":-41.5}}]`) +
		`,,` + csvQuote(`{"color":"red, bright"}`) + `,` + csvQuote(goodBOM) + `,` +
		csvQuote(`[{"step":"solder","station":"S1","at":"2026-03-01T10:00:00Z"}]`) + `,` + csvQuote(`[{"component":"app","version":"1.2.3"}]`) + "\r\n" +
		"SN-000002,M1,,,,,,fail,,null,,\n"
	rows := readAll(t, manifest, FormatCSV)
	// The CSR cell spans its PEM's lines, the last one closing the quote.
	checkRows(t, rows, []want{{2, "SN-000001", "", ""}, {3 + strings.Count(csr, "\n"), "SN-000002", "", ""}})
	r := rows[0]
	if r.Model != "M1" || r.HardwareRevision != "r2" || r.Batch != "b7" {
		t.Errorf("identity = %q %q %q", r.Model, r.HardwareRevision, r.Batch)
	}
	if r.CSR != csr { // CRLF inside the quoted cell read as LF
		t.Errorf("CSR = %q, want %q", r.CSR, csr)
	}
	if _, err := DecodeCSR(r.CSR); err != nil {
		t.Errorf("DecodeCSR: %v", err)
	}
	wantQC := []fleet.QCResult{{Test: "burn_in", Result: "pass"}, {Test: "rf", Result: "fail", Measurements: map[string]float64{"dbm": -41.5}}}
	if !reflect.DeepEqual(r.QC, wantQC) {
		t.Errorf("QC = %+v, want %+v", r.QC, wantQC)
	}
	if r.Attributes["color"] != "red, bright" || string(r.BOM) != goodBOM {
		t.Errorf("attributes %v, BOM %s", r.Attributes, r.BOM)
	}
	if len(r.Assembly) != 1 || !r.Assembly[0].At.Equal(time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)) || len(r.Firmware) != 1 {
		t.Errorf("assembly %+v firmware %+v", r.Assembly, r.Firmware)
	}
	r2 := rows[1]
	if !reflect.DeepEqual(r2.QC, []fleet.QCResult{{Test: "Visual", Result: "fail"}}) || r2.BOM != nil {
		t.Errorf("row 2: QC %+v BOM %q", r2.QC, r2.BOM)
	}
}

func TestCSVHeaderErrors(t *testing.T) {
	cases := map[string]struct{ manifest, want string }{
		"empty":          {"", "manifest is empty"},
		"blank":          {"\n\n  \n", "manifest is empty"},
		"unknown column": {"serial,model,colour\n", `unknown column "colour"`},
		"repeated":       {"serial,model,Serial\n", `"Serial" appears twice`},
		"repeated qc":    {"serial,model,qc.a,qc.a\n", `"qc.a" appears twice`},
		"no model":       {"serial,qc\n", "serial and model columns are required"},
		"no serial":      {"model\n", "serial and model columns are required"},
		"broken quote":   {"serial,\"model\n", "CSV header on line 1"},
		"bare qc prefix": {"serial,model,qc.\n", `unknown column "qc."`},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := NewManifestReader(strings.NewReader(c.manifest), FormatCSV)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want mention of %q", err, c.want)
			}
		})
	}
}

func TestJSONLRowErrors(t *testing.T) {
	big := `{"serial":"SN9","model":"M1","attributes":{"x":"` + strings.Repeat("x", MaxRowSize) + `"}}`
	manifest := "\ufeff" + `{"serial":"SN1","model":"M1"}` + "\n" +
		`{"serial":"SN2","model":` + "\n" + // broken JSON
		"\n   \n" +
		`{"serial":"SN3","model":"M1","colour":"red"}` + "\n" +
		`{"serial":"SN4","model":"M1","qc":{"test":"a"}}` + "\n" +
		`{"serial":"SN5","model":"M1"} {"serial":"SN6"}` + "\n" +
		`["SN7"]` + "\n" +
		big + "\n" +
		`{"serial":"SN8","model":"M1","line":3}` + "\r\n" +
		`{"serial":"SN10","model":"M1","bom":null}`
	rows := readAll(t, manifest, FormatJSONL)
	checkRows(t, rows, []want{
		{1, "SN1", "", ""},
		{2, "", CodeParse, "not valid JSON"},
		{5, "SN3", CodeParse, `unknown field "colour"`},
		{6, "SN4", CodeParse, `field "qc": got JSON object, want an array`},
		{7, "", CodeParse, "after the JSON value"},
		{8, "", CodeParse, "got JSON array, want an object"},
		{9, "", CodeTooLarge, "larger than"},
		{10, "SN8", CodeParse, `unknown field "line"`},
		{11, "SN10", "", ""},
	})
	if rows[len(rows)-1].BOM != nil {
		t.Errorf("bom null gives BOM %q, want none", rows[len(rows)-1].BOM)
	}
}

func TestNewManifestReaderUnknownFormat(t *testing.T) {
	if _, err := NewManifestReader(strings.NewReader(""), "xml"); err == nil || !strings.Contains(err.Error(), "want csv or jsonl") {
		t.Fatalf("err = %v", err)
	}
}

// failingReader fails after its data, as a dropped connection would.
type failingReader struct{ r io.Reader }

var errDropped = errors.New("connection dropped")

func (f failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if errors.Is(err, io.EOF) {
		return n, errDropped
	}
	return n, err
}

func TestManifestReadErrorIsFatal(t *testing.T) {
	for _, format := range []Format{FormatCSV, FormatJSONL} {
		manifest := "serial,model\nSN1,M1\n"
		if format == FormatJSONL {
			manifest = `{"serial":"SN1","model":"M1"}` + "\n"
		}
		mr, err := NewManifestReader(failingReader{strings.NewReader(manifest)}, format)
		if err != nil {
			t.Fatal(err)
		}
		if row, err := mr.Next(); err != nil || row.Serial != "SN1" {
			t.Fatalf("%s: first row %+v, %v", format, row, err)
		}
		for range 2 { // the error sticks
			if _, err := mr.Next(); !errors.Is(err, errDropped) {
				t.Fatalf("%s: err = %v, want %v", format, err, errDropped)
			}
		}
	}
}

func TestFormatsGiveTheSameDevices(t *testing.T) {
	at := time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC)
	rows := []Row{
		{Serial: "SN-000001", Model: "M1", HardwareRevision: "r2", CSR: newCSRPEM(t, "SN-000001"),
			QC:         []fleet.QCResult{{Test: "burn", Result: "pass", Measurements: map[string]float64{"temp": 71.25}, Station: "Q1", At: at}},
			Assembly:   []fleet.AssemblyStep{{Step: "solder", Station: "S1", Operator: "op7", At: at}},
			BOM:        []byte(goodBOM),
			Firmware:   []fleet.FirmwareVersion{{Component: "app", Version: "1.2.3", SBOMRef: "sha256:ab", InstalledAt: at}},
			Attributes: map[string]string{"color": "red, \"bright\"", "line": "7"}},
		{Serial: "SN-000002", Model: "M2", Batch: "b-own"},
	}
	var csvText, jsonText strings.Builder
	csvText.WriteString("attributes,serial,model,hardware_revision,batch,csr,qc,assembly,bom,firmware\n")
	for _, r := range rows {
		cells := []string{jsonCell(t, r.Attributes), r.Serial, r.Model, r.HardwareRevision, r.Batch, csvQuote(r.CSR),
			jsonCell(t, r.QC), jsonCell(t, r.Assembly), csvQuote(string(r.BOM)), jsonCell(t, r.Firmware)}
		csvText.WriteString(strings.Join(cells, ",") + "\n")
		jsonText.WriteString(mustJSON(t, r) + "\n")
	}
	f, err := NewFactory(Factory{Name: "acme", Models: []string{"M1", "M2"}, SerialPattern: `SN-\d{6}`})
	if err != nil {
		t.Fatal(err)
	}
	boms, err := LoadModelBOMs(map[string][]byte{"M2": []byte(otherBOM)})
	if err != nil {
		t.Fatal(err)
	}
	devices := func(format Format, manifest string) []*fleet.Device {
		var out []*fleet.Device
		for _, r := range readAll(t, manifest, format) {
			d, err := r.Device(f, "batch-1", at, boms)
			if err != nil {
				t.Fatalf("%s line %d: %v", format, r.Line, err)
			}
			d.ID = ""
			out = append(out, d)
		}
		return out
	}
	fromCSV, fromJSONL := devices(FormatCSV, csvText.String()), devices(FormatJSONL, jsonText.String())
	if len(fromCSV) != 2 || !reflect.DeepEqual(fromCSV, fromJSONL) {
		t.Fatalf("CSV and JSON lines differ:\ncsv   %s\njsonl %s", mustJSON(t, fromCSV), mustJSON(t, fromJSONL))
	}
	if got := fromCSV[0].Manufacturing.QC[0]; got.Measurements["temp"] != 71.25 || !got.At.Equal(at) {
		t.Errorf("QC = %+v", got)
	}
	if string(fromCSV[1].Manufacturing.BOM) != otherBOM || fromCSV[1].Identity.Batch != "b-own" {
		t.Errorf("second device: BOM %s batch %q", fromCSV[1].Manufacturing.BOM, fromCSV[1].Identity.Batch)
	}
}

func jsonCell(t *testing.T, v any) string { return csvQuote(mustJSON(t, v)) }

func TestDetectFormat(t *testing.T) {
	cases := []struct {
		name, head string
		want       Format
		err        string
	}{
		{"batch.csv", "{", FormatCSV, ""},
		{"BATCH.JSONL", "serial", FormatJSONL, ""},
		{"b.ndjson", "", FormatJSONL, ""},
		{"-", "\ufeff  \n{\"serial\"", FormatJSONL, ""},
		{"manifest", "serial,model", FormatCSV, ""},
		{"b.json", `{"serial":"x"}`, FormatJSONL, ""},
		{"b.json", ` [{"serial":"x"}]`, "", "JSON array"},
		{"", " \n", "", "empty"},
	}
	for _, c := range cases {
		got, err := DetectFormat(c.name, []byte(c.head))
		if got != c.want || (c.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("DetectFormat(%q, %q) = %q, %v; want %q, %q", c.name, c.head, got, err, c.want, c.err)
		}
	}
}

func TestParseFormat(t *testing.T) {
	for in, want := range map[string]Format{"csv": FormatCSV, " CSV ": FormatCSV, "jsonl": FormatJSONL, "ndjson": FormatJSONL} {
		if got, err := ParseFormat(in); err != nil || got != want {
			t.Errorf("ParseFormat(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseFormat("xlsx"); err == nil {
		t.Error("ParseFormat(xlsx) succeeded")
	}
}
