package main

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestListWriterJSON(t *testing.T) {
	for _, tt := range []struct {
		name   string
		paged  bool
		items  []map[string]string
		cursor string
		want   string
	}{
		{"empty", false, nil, "", `{"items":[]}`},
		{"empty paged", true, nil, "", `{"items":[],"nextCursor":""}`},
		{"items", false, []map[string]string{{"a": "1"}, {"b": "2"}}, "", `{"items":[{"a":"1"},{"b":"2"}]}`},
		{"paged", true, []map[string]string{{"a": "1"}}, "c\"x", `{"items":[{"a":"1"}],"nextCursor":"c\"x"}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			l := printer{w: &b, json: true}.list(tt.paged, "A")
			for _, it := range tt.items {
				l.add(it)
			}
			if err := l.close(tt.cursor); err != nil {
				t.Fatal(err)
			}
			var got any
			if err := json.Unmarshal([]byte(b.String()), &got); err != nil {
				t.Fatalf("invalid JSON %q: %v", b.String(), err)
			}
			compact, _ := json.Marshal(got)
			var want any
			_ = json.Unmarshal([]byte(tt.want), &want)
			wantCompact, _ := json.Marshal(want)
			if string(compact) != string(wantCompact) {
				t.Fatalf("got %s, want %s", compact, wantCompact)
			}
		})
	}
}

func TestTableCells(t *testing.T) {
	var b strings.Builder
	l := printer{w: &b}.list(false, "NAME", "NOTE")
	l.add(nil, "x", "")
	l.add(nil, "y", "two\nlines\tand tab")
	if err := l.close(""); err != nil {
		t.Fatal(err)
	}
	want := "NAME  NOTE\nx     -\ny     two lines and tab\n"
	if b.String() != want {
		t.Fatalf("got\n%q\nwant\n%q", b.String(), want)
	}
}
