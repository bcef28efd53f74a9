package commands

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"
)

// outputFlag adds -o to a command that prints data: text (a table, the
// default), json or yaml. Lists print as a JSON array.
func outputFlag(cmd *cobra.Command, output *string) {
	cmd.Flags().StringVarP(output, "output", "o", "text", "output format: text, json or yaml")
}

// checkFormat refuses an -o the command does not print.
func checkFormat(output string, allowed ...string) error {
	if len(allowed) == 0 {
		allowed = []string{"text", "json", "yaml"}
	}
	if !slices.Contains(allowed, output) {
		return fmt.Errorf("check -o %q: want %s", output, strings.Join(allowed, ", "))
	}
	return nil
}

// printData prints v as JSON or YAML, or calls text for -o text.
func (a *app) printData(output string, v any, text func(w io.Writer) error) error {
	switch output {
	case "json":
		enc := json.NewEncoder(a.io.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "yaml":
		b, err := yaml.Marshal(v)
		if err != nil {
			return fmt.Errorf("print as yaml: %w", err)
		}
		_, err = a.io.Out.Write(b)
		return err
	case "text", "":
		return text(a.io.Out)
	}
	return checkFormat(output)
}

// printLine prints one item of a stream of items (tail, logs -f): JSON
// lines, or YAML documents separated by ---.
func (a *app) printLine(output string, v any) error {
	switch output {
	case "json":
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("print as json: %w", err)
		}
		_, err = fmt.Fprintf(a.io.Out, "%s\n", b)
		return err
	case "yaml":
		b, err := yaml.Marshal(v)
		if err != nil {
			return fmt.Errorf("print as yaml: %w", err)
		}
		_, err = fmt.Fprintf(a.io.Out, "---\n%s", b)
		return err
	}
	return checkFormat(output, "json", "yaml")
}

// plural is "1 function", "2 functions".
func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}
