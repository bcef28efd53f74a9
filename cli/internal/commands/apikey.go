package commands

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// apiKeyInfo mirrors the deployer's /v1/apikeys JSON.
type apiKeyInfo struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Scopes  []string  `json:"scopes"`
	Created time.Time `json:"created"`
	Actor   string    `json:"actor"`
	Secret  string    `json:"secret,omitempty"`
}

func (a *app) apikeyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "apikey",
		Short: "Create, list and revoke gateway API keys",
		Long: `API keys let callers through gateway routes whose descriptor says
auth: { apiKey: true }. Callers send the key as "X-API-Key: <key>" or
"Authorization: Bearer <key>". The deployer stores only a hash: the key is
shown once, by create.`,
	}
	cmd.AddCommand(a.apikeyCreateCmd(), a.apikeyLsCmd(), a.apikeyRevokeCmd())
	return cmd
}

func (a *app) apikeyCreateCmd() *cobra.Command {
	var (
		scopes []string
		output string
	)
	cmd := &cobra.Command{
		Use:     "create NAME",
		Short:   "Create an API key and print its secret (shown only this once)",
		Example: `  butter apikey create ci --scope orders:write --scope orders:read`,
		Args:    cobra.ExactArgs(1),
	}
	c := a.deployerFlags(cmd)
	cmd.Flags().StringSliceVar(&scopes, "scope", nil, "scope granted to the key; repeat or comma-separate")
	outputFlag(cmd, &output)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkFormat(output); err != nil {
			return err
		}
		body, _ := json.Marshal(map[string]any{"name": args[0], "scopes": scopes})
		var k apiKeyInfo
		if _, err := c.do(cmd.Context(), "POST", "/v1/apikeys", "application/json", body, &k); err != nil {
			return err
		}
		fmt.Fprintln(a.io.Err, "store the secret now: it cannot be shown again")
		return a.printData(output, k, func(w io.Writer) error {
			fmt.Fprintf(w, "created api key %s (%s)\n", k.ID, k.Name)
			_, err := fmt.Fprintf(w, "secret: %s\n", k.Secret)
			return err
		})
	}
	return cmd
}

func (a *app) apikeyLsCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{Use: "ls", Short: "List API keys (never their secrets)", Args: cobra.NoArgs}
	c := a.deployerFlags(cmd)
	outputFlag(cmd, &output)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := checkFormat(output); err != nil {
			return err
		}
		var list struct {
			Keys []apiKeyInfo `json:"keys"`
		}
		if _, err := c.do(cmd.Context(), "GET", "/v1/apikeys", "", nil, &list); err != nil {
			return err
		}
		if list.Keys == nil {
			list.Keys = []apiKeyInfo{}
		}
		return a.printData(output, list.Keys, func(w io.Writer) error {
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tSCOPES\tCREATED\tBY")
			for _, k := range list.Keys {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", k.ID, k.Name, strings.Join(k.Scopes, ","), k.Created.Format(time.RFC3339), k.Actor)
			}
			return tw.Flush()
		})
	}
	return cmd
}

func (a *app) apikeyRevokeCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "revoke ID", Aliases: []string{"rm"}, Short: "Revoke an API key; gateways refuse it within moments (alias rm)", Args: cobra.ExactArgs(1)}
	c := a.deployerFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if _, err := c.do(cmd.Context(), "DELETE", "/v1/apikeys/"+args[0], "", nil, nil); err != nil {
			return unknown(err, "api key", args[0], "butter apikey ls")
		}
		fmt.Fprintf(a.io.Out, "revoked api key %s\n", args[0])
		return nil
	}
	return cmd
}
