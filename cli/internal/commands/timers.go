package commands

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// timerInfo mirrors the timer's /v1/timers JSON (timer/internal/api.Timer).
type timerInfo struct {
	ID         string          `json:"id"`
	Schedule   string          `json:"schedule"`
	Timezone   string          `json:"timezone"`
	Stream     string          `json:"stream"`
	CatchUp    string          `json:"catchUp"`
	Data       json.RawMessage `json:"data,omitempty"`
	Source     string          `json:"source"`
	Deployment string          `json:"deployment,omitempty"`
	Function   string          `json:"function,omitempty"`
	Created    time.Time       `json:"created"`
	LastFired  *time.Time      `json:"lastFired,omitempty"`
	FiredBy    string          `json:"firedBy,omitempty"`
	Next       *time.Time      `json:"next,omitempty"`
}

func (a *app) timersCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "timers",
		Aliases: []string{"timer"},
		Short:   "List, create and delete timers (cron ticks on a stream)",
		Long: `Timers emit a tick event (type butter.timer.tick) to a stream on a schedule.
Timers created here live in the timer service; the timers of descriptors
(bindings.timer) are listed too, as <deployment>/<function>, and change by
redeploying.`,
	}
	cmd.AddCommand(a.timersLsCmd(), a.timersCreateCmd(), a.timersRmCmd())
	return cmd
}

func (a *app) timersLsCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{Use: "ls", Short: "List timers with their next and last tick", Args: cobra.NoArgs}
	c := a.apiFlags(cmd, "timer")
	outputFlag(cmd, &output)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := checkFormat(output); err != nil {
			return err
		}
		var list struct {
			Timers []timerInfo `json:"timers"`
		}
		if _, err := c.do(cmd.Context(), "GET", "/v1/timers", "", nil, &list); err != nil {
			return err
		}
		if list.Timers == nil {
			list.Timers = []timerInfo{}
		}
		return a.printData(output, list.Timers, func(w io.Writer) error {
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TIMER\tSCHEDULE\tTIMEZONE\tSTREAM\tSOURCE\tNEXT\tLAST FIRED")
			for _, t := range list.Timers {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Schedule, t.Timezone, t.Stream, t.Source, timeOrDash(t.Next), timeOrDash(t.LastFired))
			}
			return tw.Flush()
		})
	}
	return cmd
}

func timeOrDash(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Format(time.RFC3339)
}

func (a *app) timersCreateCmd() *cobra.Command {
	var (
		req struct {
			ID       string          `json:"id,omitempty"`
			Schedule string          `json:"schedule"`
			Stream   string          `json:"stream"`
			Data     json.RawMessage `json:"data,omitempty"`
			Timezone string          `json:"timezone,omitempty"`
			CatchUp  string          `json:"catchUp,omitempty"`
		}
		data, output string
	)
	cmd := &cobra.Command{
		Use:   "create [ID] --schedule SPEC --stream NAME",
		Short: "Create a timer that ticks on a stream",
		Example: `  butter timers create --schedule "@every 10s" --stream ticks
  butter timers create nightly --schedule "0 2 * * *" --timezone Europe/Berlin --stream jobs --data '{"job":"report"}'`,
		Args: cobra.MaximumNArgs(1),
	}
	c := a.apiFlags(cmd, "timer")
	cmd.Flags().StringVar(&req.Schedule, "schedule", "", `cron (optional seconds field), or @every 10s, @hourly... (required)`)
	cmd.Flags().StringVar(&req.Stream, "stream", "", "stream that receives the ticks; created if missing (required)")
	cmd.Flags().StringVar(&data, "data", "", "JSON copied into every tick's data")
	cmd.Flags().StringVar(&req.Timezone, "timezone", "", "IANA time zone of the schedule (default UTC)")
	cmd.Flags().StringVar(&req.CatchUp, "catch-up", "", "ticks missed while down: none, one (default) or all")
	outputFlag(cmd, &output)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkFormat(output); err != nil {
			return err
		}
		if len(args) == 1 {
			req.ID = args[0]
		}
		if data != "" {
			if !json.Valid([]byte(data)) {
				return fmt.Errorf("--data: not valid JSON: %s", data)
			}
			req.Data = json.RawMessage(data)
		}
		body, _ := json.Marshal(req)
		var t timerInfo
		if _, err := c.do(cmd.Context(), "POST", "/v1/timers", "application/json", body, &t); err != nil {
			return err
		}
		return a.printData(output, t, func(w io.Writer) error {
			_, err := fmt.Fprintf(w, "created timer %s: %s (%s) on %s, next tick %s\n", t.ID, t.Schedule, t.Timezone, t.Stream, timeOrDash(t.Next))
			return err
		})
	}
	return cmd
}

func (a *app) timersRmCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "rm ID", Short: "Delete a timer created with timers create", Args: cobra.ExactArgs(1)}
	c := a.apiFlags(cmd, "timer")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if _, err := c.do(cmd.Context(), "DELETE", "/v1/timers/"+args[0], "", nil, nil); err != nil {
			return unknown(err, "timer", args[0], "butter timers ls")
		}
		fmt.Fprintf(a.io.Out, "deleted timer %s\n", args[0])
		return nil
	}
	return cmd
}
