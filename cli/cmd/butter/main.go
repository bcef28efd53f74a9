// Command butter runs Butter Compass (`butter up`) and talks to it.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/buttercompass/butter/cli/internal/commands"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The first signal starts a clean stop; a second one ends the process
	// at once, as Go's default handling does.
	go func() { <-ctx.Done(); stop() }()
	err := commands.Execute(ctx, os.Args[1:], commands.IO{In: os.Stdin, Out: os.Stdout, Err: os.Stderr})
	stop()
	if err == nil {
		return
	}
	var silent commands.SilentError
	if !errors.As(err, &silent) {
		fmt.Fprintln(os.Stderr, "butter:", err)
	}
	os.Exit(1)
}
