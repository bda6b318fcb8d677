package main

import "github.com/spf13/cobra"

// featureCommands are the commands of the features built on the registry,
// each defined in its own file.
func featureCommands(g *globals) []*cobra.Command {
	return []*cobra.Command{
		newJobsCmd(g),
		newRegionsCmd(g),
		newAuditCmd(g),
		newVulnsCmd(g),
		newIntelCmd(g),
		newAlertsCmd(g),
		newRulesCmd(g),
		newIncidentsCmd(g),
	}
}
