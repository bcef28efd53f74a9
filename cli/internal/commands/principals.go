package commands

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/buttercompass/butter/proto/access"
	"github.com/buttercompass/butter/proto/kit"
)

// PasswordEnv is the variable `butter principals` reads a platform
// service's password from: BUTTER_GATEWAY_PASSWORD for butter-gateway.
func PasswordEnv(user string) string {
	return "BUTTER_" + strings.ToUpper(strings.TrimPrefix(user, "butter-")) + "_PASSWORD"
}

// principalsCmd makes the platform services' users with passwords given in
// the environment: how containers (deploy/compose.yaml, deploy/k8s) give
// each service a login of its own, which `butter up` makes itself with
// fresh passwords at every start.
func (a *app) principalsCmd() *cobra.Command {
	var wait time.Duration
	var names []string
	for _, u := range access.Services() {
		names = append(names, PasswordEnv(u))
	}
	cmd := &cobra.Command{
		Use:   "principals",
		Short: "Make the platform services' Kafka users and ACLs from given passwords",
		Long: `Make each platform service's SASL/SCRAM user with the password in its
variable (` + strings.Join(names, ", ") + `) and give it exactly the ACLs of
docs/security.md; services whose variable is empty are left alone. Log in as
a principal that may manage users and ACLs (the embedded broker's admin).
Run it again to change passwords: the ACLs are set, not added.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), wait)
			defer cancel()
			return a.makePrincipals(ctx)
		},
	}
	cmd.Flags().DurationVar(&wait, "wait", time.Minute, "how long to retry while the cluster is not reachable yet (a broker starting beside this)")
	return cmd
}

func (a *app) makePrincipals(ctx context.Context) error {
	type login struct{ user, password string }
	var logins []login
	for _, u := range access.Services() {
		if p := os.Getenv(PasswordEnv(u)); p != "" {
			logins = append(logins, login{u, p})
		}
	}
	if len(logins) == 0 {
		return fmt.Errorf("no service password given: set %s (or some of them)", PasswordEnv(access.GatewayUser)+", "+PasswordEnv(access.DeployerUser)+", ...")
	}
	cl, err := a.client()
	if err != nil {
		return err
	}
	for _, l := range logins {
		for {
			err = access.SetUser(ctx, cl, l.user, l.password)
			if err == nil {
				err = access.Grants(ctx, cl, l.user, access.Service(a.kafka.Namespace(), l.user))
			}
			// A refusal is final; anything else may be a broker still
			// starting beside this command.
			if err == nil || errors.Is(err, access.ErrNotAllowed) || ctx.Err() != nil {
				break
			}
			kit.Sleep(ctx, time.Second)
		}
		if err != nil {
			return fmt.Errorf("make the principal %s: %w", l.user, err)
		}
		fmt.Fprintf(a.io.Out, "principal %s: password set, ACLs granted\n", l.user)
	}
	return nil
}
