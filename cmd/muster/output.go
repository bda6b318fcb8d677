package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/muster-iot/muster/client"
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

// bindPageFlags adds the flags of a paginated listing of nouns, for
// printListing: --limit and --cursor choose one page, --all follows every
// page instead.
func bindPageFlags(cmd *cobra.Command, opts *client.ListOptions, all *bool, noun string) {
	f := cmd.Flags()
	f.IntVar(&opts.Limit, "limit", 0, noun+" per page, 1 to 1000 (default 100)")
	f.StringVar(&opts.Cursor, "cursor", "", "start at this page cursor (from a previous listing)")
	f.BoolVar(all, "all", false, "list every matching "+strings.TrimSuffix(noun, "s")+", following all pages")
	cmd.MarkFlagsMutuallyExclusive("all", "limit")
	cmd.MarkFlagsMutuallyExclusive("all", "cursor")
}

// printListing prints a paginated listing: with all, every item the
// iterator yields; otherwise the one page page fetches, followed on the
// terminal by how to get the next. noun names the items in that hint.
func printListing[T any](cmd *cobra.Command, g *globals, out *listWriter, all bool, noun string,
	items iter.Seq2[*T, error], page func() (*client.Page[T], error), add func(*T)) error {
	if all {
		for it, err := range items {
			if err != nil {
				_ = out.close("")
				return err
			}
			add(it)
		}
		return out.close("")
	}
	p, err := page()
	if err != nil {
		return err
	}
	for i := range p.Items {
		add(&p.Items[i])
	}
	if err := out.close(p.NextCursor); err != nil {
		return err
	}
	if p.NextCursor != "" && !g.jsonOutput() {
		fmt.Fprintf(cmd.ErrOrStderr(), "More %s match: add --all, or --cursor %s for the next page.\n", noun, p.NextCursor)
	}
	return nil
}

// newDeleteCmd is "delete NAME" for a kind of named thing: del deletes it,
// and the answer says so, as {"name","deleted"} in JSON.
func newDeleteCmd(g *globals, kind, short string, del func(ctx context.Context, c *client.Client, name string) error) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			if err := del(cmd.Context(), c, args[0]); err != nil {
				return err
			}
			result := struct {
				Name    string `json:"name"`
				Deleted bool   `json:"deleted"`
			}{args[0], true}
			return g.printer(cmd).print(result, func(t *table) {
				fmt.Fprintf(t.tw, "%s %s deleted.\n", kind, args[0])
			})
		},
	}
}
