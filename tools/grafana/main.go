// Command dashcheck validates Grafana dashboard JSON files against the typed dashboard model of
// the grafana-foundation-sdk (Apache-2.0), generated from Grafana's own schema: the strict decoder
// refuses unknown fields, wrong types and missing required fields, and each panel's options and
// field config are decoded by the panel plugin's own types. Grafana itself cannot be run here
// (its licence), so this is how the shipped dashboard is checked the way Grafana would read it.
//
//	dashcheck FILE...   exit 0 when every file decodes and validates; else one line per problem
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// problem is err, unless it is the SDK's empty error list: its strict decoders return their
// (typed, empty) cog.BuildErrors even when nothing is wrong.
func problem(err error) error {
	var list cog.BuildErrors
	if errors.As(err, &list) && len(list) == 0 {
		return nil
	}
	return err
}

func check(path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var d dashboard.Dashboard
	if err := problem(d.UnmarshalJSONStrict(raw)); err != nil {
		return fmt.Errorf("does not decode as a Grafana dashboard: %w", err)
	}
	if err := problem(d.Validate()); err != nil {
		return fmt.Errorf("decodes but does not validate: %w", err)
	}
	return nil
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: dashcheck FILE...")
		os.Exit(2)
	}
	plugins.RegisterDefaultPlugins()
	failed := false
	for _, path := range os.Args[1:] {
		if err := check(path); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", path, err)
			failed = true
		}
	}
	if failed {
		os.Exit(1)
	}
}
