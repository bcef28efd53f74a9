package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// partStatus is one part's health as butter status shows it.
type partStatus struct {
	Part    string `json:"part"`
	Address string `json:"address"`
	Ready   bool   `json:"ready"`
	Detail  string `json:"detail,omitempty"`
}

func (a *app) statusCmd() *cobra.Command {
	var (
		output  string
		timeout time.Duration
	)
	urls := map[string]*string{}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show every part's address and health; exit 1 unless all are ready",
		Long: `Show the broker and every platform service with its address and health:
the broker answers a Kafka metadata request, each service its /readyz.
Addresses come from the client context (<data>/context.json that butter up
writes, or --context), then each flag or BUTTER_* variable. Exits 1 when a
part is not ready.`,
		Example: `  butter status
  butter status --context /srv/butter/context.json -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(output); err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			parts, err := a.status(ctx, urls)
			if err != nil {
				return err
			}
			if err := a.printData(output, parts, func(w io.Writer) error {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "PART\tADDRESS\tSTATUS\tDETAIL")
				for _, p := range parts {
					st := "ready"
					if !p.Ready {
						st = "NOT READY"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.Part, p.Address, st, p.Detail)
				}
				return tw.Flush()
			}); err != nil {
				return err
			}
			var down []string
			for _, p := range parts {
				if !p.Ready {
					down = append(down, p.Part)
				}
			}
			if len(down) > 0 {
				return fmt.Errorf("not ready: %s", strings.Join(down, ", "))
			}
			return nil
		},
	}
	for _, s := range services {
		urls[s.name] = new(string)
		cmd.Flags().StringVar(urls[s.name], s.name, "", fmt.Sprintf("%s `URL` or host:port (env %s; default from the client context, else %s)", s.name, s.env, s.def))
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Second, "how long each part has to answer")
	outputFlag(cmd, &output)
	return cmd
}

// status asks every part at once: the broker, then each service of the
// context (admin only when the context or a setting names it).
func (a *app) status(ctx context.Context, urls map[string]*string) ([]partStatus, error) {
	c, err := a.loadContext()
	if err != nil {
		return nil, err
	}
	parts := []partStatus{{Part: "broker"}}
	for _, s := range services {
		if s.name == "admin" && c.Admin == "" && *urls[s.name] == "" {
			continue
		}
		u, err := a.serviceURL(s.name, *urls[s.name])
		if err != nil {
			return nil, fmt.Errorf("--%s: %w", s.name, err)
		}
		parts = append(parts, partStatus{Part: s.name, Address: u})
	}
	var wg sync.WaitGroup
	for i := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i == 0 {
				parts[0] = a.brokerStatus(ctx)
				return
			}
			parts[i].Ready, parts[i].Detail = readyz(ctx, parts[i].Address)
		}()
	}
	wg.Wait()
	return parts, nil
}

func (a *app) brokerStatus(ctx context.Context) partStatus {
	p := partStatus{Part: "broker"}
	adm, err := a.admin()
	p.Address = strings.Join(a.kafka.Brokers, ",")
	if err != nil {
		p.Detail = err.Error()
		return p
	}
	brokers, err := adm.ListBrokers(ctx)
	if err != nil {
		p.Detail = err.Error()
		if errors.Is(err, context.DeadlineExceeded) {
			p.Detail = "no answer (is butter up running? --brokers, --context or --data point elsewhere)"
		}
		return p
	}
	p.Ready, p.Detail = true, plural(len(brokers), "broker")
	if a.kafka.SASLUser != "" {
		p.Detail += ", logged in as " + a.kafka.SASLUser
	}
	return p
}

// readyz asks base/readyz; 200 is ready, anything else says why not.
func readyz(ctx context.Context, base string) (bool, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/readyz", nil)
	if err != nil {
		return false, err.Error()
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		var detail string
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			detail = "no answer"
		case strings.Contains(err.Error(), "connection refused"):
			detail = "connection refused (not running?)"
		default:
			detail = err.Error()
		}
		return false, detail
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Sprintf("/readyz answered %d %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return true, ""
}
