package mfg

import (
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
)

func TestRecordReaderCSV(t *testing.T) {
	in := "\ufeffserial,owner,attr.site\r\n" +
		"A-1,acme,\"multi\nline\"\n" +
		"\n" +
		"A-2,bad\"quote,x\n" +
		"A-3,acme\n" +
		"A-4,acme,lyon\n"
	rr, err := NewRecordReader(strings.NewReader(in), FormatCSV)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rr.Header(), []string{"serial", "owner", "attr.site"}) {
		t.Fatalf("header %q", rr.Header())
	}
	var got []Record
	for {
		rec, err := rr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		rec.Fields = slices.Clone(rec.Fields)
		got = append(got, rec)
	}
	if len(got) != 4 {
		t.Fatalf("%d records, want 4: %+v", len(got), got)
	}
	if got[0].Line != 2 || !slices.Equal(got[0].Fields, []string{"A-1", "acme", "multi\nline"}) || got[0].Err != nil {
		t.Errorf("record 1: %+v", got[0])
	}
	if got[1].Line != 5 || got[1].Err == nil || got[1].Err.Code != CodeParse {
		t.Errorf("record with a stray quote: %+v", got[1])
	}
	if got[2].Line != 6 || got[2].Err == nil || !strings.Contains(got[2].Err.Message, "2 fields but the header has 3") {
		t.Errorf("short record: %+v", got[2])
	}
	if got[3].Line != 7 || !slices.Equal(got[3].Fields, []string{"A-4", "acme", "lyon"}) {
		t.Errorf("record after the bad ones: %+v", got[3])
	}
	if _, err := NewRecordReader(strings.NewReader(""), FormatCSV); err == nil {
		t.Error("an empty CSV manifest was accepted")
	}
	if _, err := NewRecordReader(strings.NewReader("x"), "xml"); err == nil {
		t.Error("an unknown format was accepted")
	}
}

func TestRecordReaderJSONL(t *testing.T) {
	long := `{"serial":"` + strings.Repeat("x", MaxRowSize) + `"}`
	in := `{"serial":"A-1"}` + "\n\n" + long + "\n" + `{"serial":"A-3","extra":1}` + "\n" + `{"serial":"A-4"`
	rr, err := NewRecordReader(strings.NewReader(in), FormatJSONL)
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Serial string `json:"serial"`
	}
	rec, _ := rr.Next()
	if rec.Line != 1 || DecodeJSONRecord(rec, &v) != nil || v.Serial != "A-1" {
		t.Fatalf("record 1: %+v %q", rec, v.Serial)
	}
	if rec, _ = rr.Next(); rec.Line != 3 || rec.Err == nil || rec.Err.Code != CodeTooLarge {
		t.Fatalf("over-long record: line %d %v", rec.Line, rec.Err)
	}
	rec, _ = rr.Next()
	if e := DecodeJSONRecord(rec, &v); rec.Line != 4 || e == nil || e.Serial != "A-3" || !strings.Contains(e.Message, "extra") {
		t.Fatalf("record with an unknown field: %+v %v", rec, e)
	}
	rec, _ = rr.Next()
	if e := DecodeJSONRecord(rec, &v); rec.Line != 5 || e == nil {
		t.Fatalf("truncated record: %+v %v", rec, e)
	}
	if _, err := rr.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the last record: %v", err)
	}
	var m map[string]string
	if err := DecodeJSONCell(`{"a":1}`, &m); err == nil || !strings.Contains(err.Error(), "string") {
		t.Fatalf("DecodeJSONCell of a number: %v", err)
	}
}
