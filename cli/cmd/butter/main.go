// Command butter runs Butter Compass (`butter up`) and talks to it.
//
// `butter fnbox ...` is the function container itself: butter up's
// deployer runs the butter binary again with it for every instance, so a
// lone butter binary is the whole platform. It bypasses the command tree:
// fnbox parses its own flags and exits with its own codes, which the
// deployer reads (code failed to load, orphaned).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/buttercompass/butter/cli/internal/commands"
	fnbox "github.com/buttercompass/butter/fnbox/app"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == commands.FnboxCommand {
		os.Exit(fnbox.Main(os.Args[2:]))
	}
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
