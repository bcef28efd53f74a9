package commands

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/buttercompass/butter/proto/descriptor"
)

func (a *app) validateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "validate FILE",
		Short: "Check a deployment descriptor and print every problem",
		Long: `Check a deployment descriptor (butter.yaml) without deploying it. Every
problem is printed as FILE:LINE:COLUMN FIELD: MESSAGE; the exit code is 1
when there is any.`,
		Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			d, err := descriptor.ParseFile(args[0])
			var problems descriptor.Problems
			if errors.As(err, &problems) {
				for _, p := range problems {
					fmt.Fprintln(a.io.Err, p)
				}
				return SilentError{fmt.Errorf("%s: %s", args[0], plural(len(problems), "problem"))}
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(a.io.Out, "%s: deployment %q is valid (%s)\n", args[0], d.Name, plural(len(d.Functions), "function"))
			return nil
		},
	}
}
