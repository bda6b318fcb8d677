package main

import (
	"fmt"
	"strconv"

	"github.com/muster-iot/muster/client"
	"github.com/spf13/cobra"
)

// printEvents prints a hash-chained history: a device's or the audit log.
func (g *globals) printEvents(cmd *cobra.Command, events []client.Event) error {
	out := g.printer(cmd).list(false, "SEQ", "AT", "TYPE", "ACTOR", "HASH")
	for i := range events {
		e := &events[i]
		out.add(e, strconv.FormatInt(e.Seq, 10), timestamp(e.At), e.Type, e.Actor, shortHash(e.Hash))
	}
	return out.close("")
}

// shortHash abbreviates a hash for tables, as git does; -o json has it whole.
func shortHash(h string) string {
	if len(h) > 16 {
		return h[:16]
	}
	return h
}

// printVerification prints the verdict on a chain and fails the command
// when the chain is broken, so scripts can rely on the exit code.
func (g *globals) printVerification(cmd *cobra.Command, what string, v *client.Verification) error {
	err := g.printer(cmd).print(v, func(t *table) {
		if v.OK {
			fmt.Fprintf(t.tw, "%s intact: %d events\n", what, v.Events)
			return
		}
		seq, reason := int64(0), "the server did not say where"
		if v.Break != nil {
			seq, reason = v.Break.Seq, v.Break.Reason
		}
		fmt.Fprintf(t.tw, "%s BROKEN at event %d: %s\n", what, seq, reason)
	})
	if err != nil {
		return err
	}
	if !v.OK {
		return &exitError{code: 1}
	}
	return nil
}
