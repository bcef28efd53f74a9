// Command fakefnbox is a STAND-IN for the real fnbox binary, used only by
// the deployer's tests while fnbox is written elsewhere. It accepts
// fnbox's command line, checks that --code holds butter.yaml, writes
// the ready file (control.ReadyFileFlag) as fnbox does and sleeps until
// SIGTERM, then exits 0. FAKEFNBOX_IGNORE_TERM=1 makes it ignore SIGTERM
// (to test the SIGKILL after the grace period). A descriptor holding the
// comment "fakefnbox: fail to load" makes it exit 78, as fnbox does when
// the code fails to load.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/buttercompass/butter/proto/control"
)

func main() {
	fs := flag.NewFlagSet("fnbox", flag.ExitOnError)
	code := fs.String("code", "", "code dir")
	descriptor := fs.String("descriptor", "", "descriptor file")
	functions := fs.String("functions", "", "functions")
	instance := fs.String("instance", "", "instance id")
	_ = fs.String("admin", "", "admin addr")
	readyFile := fs.String(control.ReadyFileFlag, "", "ready file")
	_ = fs.Duration(control.OrphanGraceFlag, 0, "orphan grace")
	for _, name := range []string{"brokers", "topic-prefix", "sasl-mechanism", "sasl-user", "sasl-password", "tls-ca", "tls-cert", "tls-key", "slot"} {
		_ = fs.String(name, "", "kafka flag")
	}
	_ = fs.Bool("tls", false, "tls")
	_ = fs.Bool("tls-insecure", false, "tls insecure")
	_ = fs.Parse(os.Args[1:])
	if _, err := os.Stat(filepath.Join(*code, "butter.yaml")); err != nil {
		fmt.Fprintln(os.Stderr, "fakefnbox: no butter.yaml in --code:", err)
		os.Exit(2)
	}
	// A descriptor saying so plays code that fails to load.
	if b, _ := os.ReadFile(*descriptor); strings.Contains(string(b), "fakefnbox: fail to load") {
		fmt.Fprintln(os.Stderr, "handler.js:1: SyntaxError: Unexpected token")
		os.Exit(78) // control.ExitCodeLoadError
	}
	sigs := make(chan os.Signal, 1)
	ignore := os.Getenv("FAKEFNBOX_IGNORE_TERM") == "1"
	if ignore {
		signal.Ignore(syscall.SIGTERM)
	} else {
		signal.Notify(sigs, syscall.SIGTERM, os.Interrupt)
	}
	// Readiness as fnbox signals it: the ready file, never a log line.
	fmt.Printf("fakefnbox running instance %s, functions %s\n", *instance, *functions)
	if *readyFile != "" {
		b, _ := json.Marshal(control.ReadyFile{PID: os.Getpid(), Instance: *instance})
		if err := os.WriteFile(*readyFile, b, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "fakefnbox:", err)
			os.Exit(1)
		}
	}
	for ignore {
		// A sleeping goroutine, not a blocked receive: the runtime would
		// call that a deadlock and exit.
		time.Sleep(time.Hour)
	}
	<-sigs
	fmt.Println("fakefnbox stopping")
}
