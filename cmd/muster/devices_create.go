package main

import (
	"encoding/json"
	"fmt"

	"github.com/muster-iot/muster/client"
	"github.com/spf13/cobra"
)

func newDevicesCreateCmd(g *globals) *cobra.Command {
	var (
		file, bomFile, qcFile string
		id                    client.Identity
		owner                 string
		groups, tags, attrs   []string
	)
	cmd := &cobra.Command{
		Use:   "create --factory F --model M --serial S",
		Short: "Register a device (it starts in state manufactured)",
		Long: `Register a device. The record can come from a DeviceInput JSON file (-f, "-"
for stdin); flags override the file's values. --bom takes a CycloneDX JSON
document, --qc a JSON array of QC results.`,
		Example: `  muster devices create --factory acme-sz --model gw-100 --serial SN0001 --bom bom.json
  muster devices create -f device.json --owner ops --tag pilot`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var in client.DeviceInput
			if file != "" {
				if err := readJSONFile(cmd, "file", file, &in); err != nil {
					return err
				}
			}
			override(cmd, "factory", &in.Identity.Factory, id.Factory)
			override(cmd, "model", &in.Identity.Model, id.Model)
			override(cmd, "serial", &in.Identity.Serial, id.Serial)
			override(cmd, "hw-rev", &in.Identity.HardwareRevision, id.HardwareRevision)
			override(cmd, "batch", &in.Identity.Batch, id.Batch)
			override(cmd, "owner", &in.Inventory.Owner, owner)
			override(cmd, "group", &in.Inventory.Groups, nonEmpty(groups))
			override(cmd, "tag", &in.Inventory.Tags, nonEmpty(tags))
			kv, err := parsePairs("attr", attrs)
			if err != nil {
				return err
			}
			for k, v := range kv {
				if in.Attributes == nil {
					in.Attributes = map[string]string{}
				}
				in.Attributes[k] = v
			}
			if bomFile != "" {
				bom, err := readInput(cmd, bomFile)
				if err != nil {
					return fmt.Errorf("--bom: %w", err)
				}
				if !json.Valid(bom) {
					return fmt.Errorf("--bom %s is not JSON: a CycloneDX JSON document is required", bomFile)
				}
				in.Manufacturing.BOM = bom
			}
			if qcFile != "" {
				var qc []client.QCResult
				if err := readJSONFile(cmd, "qc", qcFile, &qc); err != nil {
					return err
				}
				in.Manufacturing.QC = qc
			}

			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			d, err := c.CreateDevice(cmd.Context(), in)
			if err != nil {
				return err
			}
			return g.printDevice(cmd, d)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&file, "file", "f", "", "DeviceInput JSON file (\"-\" for stdin); flags override it")
	f.StringVar(&id.Factory, "factory", "", "factory that made the device (a manufacturer token's own by default)")
	f.StringVar(&id.Model, "model", "", "model")
	f.StringVar(&id.Serial, "serial", "", "serial number, unique per factory and model")
	f.StringVar(&id.HardwareRevision, "hw-rev", "", "hardware revision")
	f.StringVar(&id.Batch, "batch", "", "manufacturing batch")
	f.StringVar(&bomFile, "bom", "", "CycloneDX (1.5 or later) JSON bill of materials")
	f.StringVar(&qcFile, "qc", "", "JSON array of quality-control results")
	f.StringVar(&owner, "owner", "", "owner")
	f.StringArrayVar(&groups, "group", nil, "inventory group (repeatable)")
	f.StringArrayVar(&tags, "tag", nil, "inventory tag (repeatable)")
	f.StringArrayVar(&attrs, "attr", nil, "attribute key=value (repeatable)")
	_ = cmd.MarkFlagFilename("file", "json")
	_ = cmd.MarkFlagFilename("bom", "json")
	_ = cmd.MarkFlagFilename("qc", "json")
	return cmd
}
