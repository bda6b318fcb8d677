package main

import (
	"github.com/muster-iot/muster/client"
	"github.com/spf13/cobra"
)

// deviceFilterFlags are the device filter flags of every command that
// selects devices the way GET /v1/devices filters them, so list and count
// accept the same flags with the same meaning.
type deviceFilterFlags struct {
	filter client.DeviceFilter
	state  string
	attrs  []string
}

// bind declares the filter flags on cmd.
func (d *deviceFilterFlags) bind(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&d.state, "state", "", "lifecycle state")
	f.StringVar(&d.filter.Model, "model", "", "model")
	f.StringVar(&d.filter.Batch, "batch", "", "manufacturing batch")
	f.StringVar(&d.filter.Owner, "owner", "", "owner")
	f.StringVar(&d.filter.Factory, "factory", "", "factory")
	f.StringVar(&d.filter.Group, "group", "", "inventory group the device is in")
	f.StringVar(&d.filter.Tag, "tag", "", "inventory tag the device has")
	f.StringVar(&d.filter.SerialPrefix, "serial", "", "serial number prefix")
	f.StringVar(&d.filter.Component, "component", "", "name of a component the device's BOM lists")
	f.StringArrayVar(&d.attrs, "attr", nil, "attribute key=value (repeat: all must match)")
	_ = cmd.RegisterFlagCompletionFunc("state", completeStates)
}

// value is the filter the parsed flags give.
func (d *deviceFilterFlags) value() (client.DeviceFilter, error) {
	f := d.filter
	f.State = client.State(d.state)
	var err error
	f.Attributes, err = parsePairs("attr", d.attrs)
	return f, err
}
