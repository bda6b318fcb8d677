package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/muster-iot/muster/client"
)

func newIncidentsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "incidents",
		Short: "Investigations: link alerts, keep notes, export the record",
	}
	var alerts []string
	create := &cobra.Command{
		Use:     "create TITLE",
		Short:   "Open an incident, linking alerts",
		Example: "  muster incidents create 'C2 beaconing in building 4' --alert alr_01j9... --alert alr_01ja...",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			in, err := c.CreateIncident(cmd.Context(), args[0], alerts)
			if err != nil {
				return err
			}
			return printIncident(g, cmd, in)
		},
	}
	create.Flags().StringArrayVar(&alerts, "alert", nil, "alert id to link (repeatable)")

	var u client.IncidentUpdate
	var closeIt, reopen bool
	update := &cobra.Command{
		Use:     "update ID",
		Short:   "Link alerts, add a note, close or reopen an incident",
		Example: "  muster incidents update inc_01j9... --note 'firmware reflashed' --close",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case closeIt:
				u.State = "closed"
			case reopen:
				u.State = "open"
			}
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			in, err := c.UpdateIncident(cmd.Context(), args[0], u)
			if err != nil {
				return err
			}
			return printIncident(g, cmd, in)
		},
	}
	update.Flags().StringArrayVar(&u.AlertIDs, "alert", nil, "alert id to link (repeatable)")
	update.Flags().StringVar(&u.Note, "note", "", "a note for the record")
	update.Flags().BoolVar(&closeIt, "close", false, "close the incident")
	update.Flags().BoolVar(&reopen, "reopen", false, "reopen the incident")
	update.MarkFlagsMutuallyExclusive("close", "reopen")

	var state string
	list := &cobra.Command{
		Use:   "list",
		Short: "List incidents, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			ins, err := c.ListIncidents(cmd.Context(), state)
			if err != nil {
				return err
			}
			out := g.printer(cmd).list(false, "ID", "STATE", "ALERTS", "CREATED", "TITLE")
			for i := range ins {
				out.add(&ins[i], ins[i].ID, ins[i].State, strconv.Itoa(len(ins[i].AlertIDs)), timestamp(ins[i].CreatedAt), ins[i].Title)
			}
			return out.close("")
		},
	}
	list.Flags().StringVar(&state, "state", "", "open or closed")

	var format string
	export := &cobra.Command{
		Use:   "export ID",
		Short: "Export an incident with its alerts, actions and notes (Markdown or JSON)",
		Example: `  muster incidents export inc_01j9... > incident.md
  muster incidents export inc_01j9... --format json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			if format == "json" || g.jsonOutput() {
				r, err := c.IncidentReport(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				return writeJSON(cmd.OutOrStdout(), r)
			}
			if format != "md" {
				return fmt.Errorf("--format %q: use md or json", format)
			}
			b, err := c.IncidentMarkdown(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(b)
			return err
		},
	}
	export.Flags().StringVar(&format, "format", "md", "md or json")
	cmd.AddCommand(create, update, list, export)
	return cmd
}

func printIncident(g *globals, cmd *cobra.Command, in *client.Incident) error {
	return g.printer(cmd).print(in, func(t *table) {
		t.row("ID", in.ID)
		t.row("Title", in.Title)
		t.row("State", in.State)
		t.row("Alerts", strings.Join(in.AlertIDs, ", "))
		t.row("Notes", strconv.Itoa(len(in.Notes)))
	})
}
