package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/muster-iot/muster/client"
	"github.com/spf13/cobra"
)

// parsePairs turns repeated "key=value" flag values into a map.
func parsePairs(flag string, vals []string) (map[string]string, error) {
	if len(vals) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(vals))
	for _, kv := range vals {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--%s %q: want key=value", flag, kv)
		}
		m[k] = v
	}
	return m, nil
}

// parseMeasurements turns repeated "name=number" values into measurements.
func parseMeasurements(flag string, vals []string) (map[string]float64, error) {
	pairs, err := parsePairs(flag, vals)
	if err != nil {
		return nil, err
	}
	var m map[string]float64
	for k, v := range pairs {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return nil, fmt.Errorf("--%s %s=%q: the value must be a number", flag, k, v)
		}
		if m == nil {
			m = make(map[string]float64, len(pairs))
		}
		m[k] = f
	}
	return m, nil
}

// readJSONFile decodes a JSON file ("-" for stdin) into v, refusing unknown
// fields and trailing data the same way the API does, so mistakes show up
// before anything is sent.
func readJSONFile(cmd *cobra.Command, flag, file string, v any) error {
	b, err := readInput(cmd, file)
	if err != nil {
		return fmt.Errorf("--%s: %w", flag, err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("--%s %s: %w", flag, file, err)
	}
	if dec.More() {
		return fmt.Errorf("--%s %s: trailing data after the JSON value", flag, file)
	}
	return nil
}

// readInput reads a file, or standard input for "-".
func readInput(cmd *cobra.Command, file string) ([]byte, error) {
	if file == "-" {
		return io.ReadAll(cmd.InOrStdin())
	}
	return os.ReadFile(file)
}

// override sets *dst to v when the flag was given on the command line, so
// flags win over a file's values but an unset flag leaves them alone.
func override[T any](cmd *cobra.Command, flag string, dst *T, v T) {
	if cmd.Flags().Changed(flag) {
		*dst = v
	}
}

// nonEmpty drops empty values, so an empty --group clears the list.
func nonEmpty(vals []string) []string {
	out := make([]string, 0, len(vals))
	for _, v := range vals {
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}

// completeStates offers lifecycle states to the shell.
func completeStates(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
	states := client.States()
	out := make([]cobra.Completion, len(states))
	for i, s := range states {
		out[i] = string(s)
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}
