package commands

import (
	"fmt"
	"io"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// buildVersion is what butter version prints, from the build info Go
// stamps into the binary.
type buildVersion struct {
	Module   string `json:"module"`
	Version  string `json:"version"`
	Commit   string `json:"commit,omitempty"`
	Time     string `json:"time,omitempty"`
	Modified bool   `json:"modified,omitempty"`
	Go       string `json:"go"`
}

func readVersion() buildVersion {
	v := buildVersion{Version: "(unknown)"}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	v.Module, v.Version, v.Go = bi.Main.Path, bi.Main.Version, bi.GoVersion
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Commit = s.Value
		case "vcs.time":
			v.Time = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

func (a *app) versionCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print butter's version: module version, commit, Go version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(output); err != nil {
				return err
			}
			v := readVersion()
			return a.printData(output, v, func(w io.Writer) error {
				fmt.Fprintf(w, "butter %s", v.Version)
				if v.Commit != "" {
					fmt.Fprintf(w, " commit %s", v.Commit)
					if v.Modified {
						fmt.Fprint(w, " (modified)")
					}
					if v.Time != "" {
						fmt.Fprintf(w, " of %s", v.Time)
					}
				}
				_, err := fmt.Fprintf(w, ", %s\n", v.Go)
				return err
			})
		},
	}
	outputFlag(cmd, &output)
	return cmd
}
