// Command fakefnbox is a STAND-IN for the real fnbox binary, used only by
// the deployer's tests while fnbox is written elsewhere. It accepts
// fnbox's command line, checks that --code holds butter.yaml, prints
// the JSON line fnbox logs when ready ({"msg":"fnbox ready",...}) and sleeps until
// SIGTERM, then exits 0. FAKEFNBOX_IGNORE_TERM=1 makes it ignore SIGTERM
// (to test the SIGKILL after the grace period). A descriptor holding the
// comment "fakefnbox: fail to load" makes it exit 78, as fnbox does when
// the code fails to load.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

func main() {
	fs := flag.NewFlagSet("fnbox", flag.ExitOnError)
	code := fs.String("code", "", "code dir")
	descriptor := fs.String("descriptor", "", "descriptor file")
	functions := fs.String("functions", "", "functions")
	instance := fs.String("instance", "", "instance id")
	_ = fs.String("admin", "", "admin addr")
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
	// The line fnbox logs when ready, as the deployer looks for it.
	fmt.Printf("{\"msg\":\"fnbox ready\",\"instance\":%q,\"functions\":%q}\n", *instance, *functions)
	for ignore {
		// A sleeping goroutine, not a blocked receive: the runtime would
		// call that a deadlock and exit.
		time.Sleep(time.Hour)
	}
	<-sigs
	fmt.Println("fakefnbox stopping")
}
