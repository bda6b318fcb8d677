package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/muster-iot/muster/client"
	"github.com/muster-iot/muster/internal/provision"
)

func newTemplatesCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "templates",
		Aliases: []string{"template"},
		Short:   "Create, change, list and delete provisioning templates",
	}
	cmd.AddCommand(newTemplatesPutCmd(g, true), newTemplatesPutCmd(g, false), newTemplatesGetCmd(g), newTemplatesListCmd(g), newTemplatesDeleteCmd(g))
	return cmd
}

// newTemplatesPutCmd is "create" (create set) or "update": both read a
// template file, check it here for quick feedback, and send it as JSON.
func newTemplatesPutCmd(g *globals, create bool) *cobra.Command {
	var file string
	use, short := "update -f FILE", "Store a new version of a template from a YAML or JSON file"
	if create {
		use, short = "create -f FILE", "Create a provisioning template from a YAML or JSON file"
	}
	cmd := &cobra.Command{
		Use:     use,
		Short:   short,
		Example: "  muster templates create -f template.yaml\n  muster templates update -f template.yaml",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			doc, name, err := readTemplate(cmd, file)
			if err != nil {
				return err
			}
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			var rec *client.TemplateRecord
			if create {
				rec, err = c.CreateTemplate(cmd.Context(), doc)
			} else {
				rec, err = c.UpdateTemplate(cmd.Context(), name, doc)
			}
			if err != nil {
				return err
			}
			return g.printer(cmd).print(rec, func(t *table) {
				t.row("Name", rec.Name)
				t.row("Version", strconv.FormatInt(rec.Version, 10))
				t.row("Created", timestamp(rec.CreatedAt))
			})
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "template file, YAML or JSON (- for standard input)")
	markRequired(cmd, "file")
	return cmd
}

// readTemplate parses and validates a template file, so mistakes are
// reported with their field before anything is sent.
func readTemplate(cmd *cobra.Command, file string) (json.RawMessage, string, error) {
	var data []byte
	var err error
	if file == "-" {
		data, err = io.ReadAll(cmd.InOrStdin())
	} else {
		data, err = os.ReadFile(file)
	}
	if err != nil {
		return nil, "", fmt.Errorf("read template: %w", err)
	}
	t, err := provision.ParseTemplate(data)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", file, err)
	}
	doc, err := json.Marshal(t)
	return doc, t.Name, err
}

func newTemplatesGetCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "get NAME",
		Short: "Show a template's newest version",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			rec, err := c.GetTemplate(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return g.printer(cmd).print(rec, func(t *table) {
				t.row("Name", rec.Name)
				t.row("Version", strconv.FormatInt(rec.Version, 10))
				t.row("Created", timestamp(rec.CreatedAt)+" by "+rec.CreatedBy)
				t.row("Template", string(rec.Template))
			})
		},
	}
}

func newTemplatesListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List templates (newest version of each)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			ts, err := c.ListTemplates(cmd.Context())
			if err != nil {
				return err
			}
			out := g.printer(cmd).list(false, "NAME", "VERSION", "CREATED", "BY")
			for i := range ts {
				r := &ts[i]
				out.add(r, r.Name, strconv.FormatInt(r.Version, 10), timestamp(r.CreatedAt), r.CreatedBy)
			}
			return out.close("")
		},
	}
}

func newTemplatesDeleteCmd(g *globals) *cobra.Command {
	return newDeleteCmd(g, "Template", "Delete a template; certificates issued under it are unaffected",
		func(ctx context.Context, c *client.Client, name string) error { return c.DeleteTemplate(ctx, name) })
}
