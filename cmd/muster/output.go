package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// printer writes a command's result: the API's JSON for scripts, or a table
// for people. Every command prints through it, so the two formats behave
// the same everywhere.
type printer struct {
	w    io.Writer
	json bool
}

func (g *globals) printer(cmd *cobra.Command) printer {
	return printer{w: cmd.OutOrStdout(), json: g.jsonOutput()}
}

// print writes v as indented JSON, or lets table render it for people.
func (p printer) print(v any, table func(t *table)) error {
	if p.json {
		return writeJSON(p.w, v)
	}
	t := newTable(p.w)
	table(t)
	return t.flush()
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table aligns rows into columns. Empty cells show as "-" so columns never
// collapse into each other.
type table struct {
	tw *tabwriter.Writer
	// flat replaces tabs and line breaks in values, which would break the
	// layout.
	flat *strings.Replacer
}

func newTable(w io.Writer) *table {
	return &table{
		tw:   tabwriter.NewWriter(w, 0, 0, 2, ' ', 0),
		flat: strings.NewReplacer("\t", " ", "\n", " ", "\r", " "),
	}
}

func (t *table) row(cols ...string) {
	for i, c := range cols {
		if i > 0 {
			io.WriteString(t.tw, "\t")
		}
		if c == "" {
			c = "-"
		}
		io.WriteString(t.tw, t.flat.Replace(c))
	}
	io.WriteString(t.tw, "\n")
}

func (t *table) flush() error { return t.tw.Flush() }

// listWriter prints a list item by item, so long listings stream instead of
// waiting for the last page. As JSON it writes the API's list envelope,
// {"items": [...]} (with "nextCursor" for paginated lists), the same shape
// a script gets from the API itself.
type listWriter struct {
	p      printer
	paged  bool
	header []string
	t      *table
	n      int
	err    error
}

// tableFlushEvery bounds how many rows a streaming table holds back to
// align columns.
const tableFlushEvery = 100

func (p printer) list(paged bool, header ...string) *listWriter {
	return &listWriter{p: p, paged: paged, header: header}
}

// add prints one item: v as JSON, or cols as a table row.
func (l *listWriter) add(v any, cols ...string) {
	if l.err != nil {
		return
	}
	if l.p.json {
		b, err := json.MarshalIndent(v, "    ", "  ")
		if err != nil {
			l.err = err
			return
		}
		sep := ",\n    "
		if l.n == 0 {
			sep = "{\n  \"items\": [\n    "
		}
		_, l.err = fmt.Fprintf(l.p.w, "%s%s", sep, b)
		l.n++
		return
	}
	if l.t == nil {
		l.t = newTable(l.p.w)
		l.t.row(l.header...)
	}
	l.t.row(cols...)
	if l.n++; l.n%tableFlushEvery == 0 {
		l.err = l.t.flush()
	}
}

// close ends the list; nextCursor is written for paginated lists.
func (l *listWriter) close(nextCursor string) error {
	if l.err != nil {
		return l.err
	}
	if l.p.json {
		if l.n == 0 {
			io.WriteString(l.p.w, "{\n  \"items\": [")
		} else {
			io.WriteString(l.p.w, "\n  ")
		}
		io.WriteString(l.p.w, "]")
		if l.paged {
			c, _ := json.Marshal(nextCursor)
			fmt.Fprintf(l.p.w, ",\n  \"nextCursor\": %s", c)
		}
		_, err := io.WriteString(l.p.w, "\n}\n")
		return err
	}
	if l.t == nil {
		l.t = newTable(l.p.w)
		l.t.row(l.header...)
	}
	return l.t.flush()
}

// timestamp formats a time for tables: UTC, to the second, "-" when unset.
func timestamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}
