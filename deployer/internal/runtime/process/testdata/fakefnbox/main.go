// Command fakefnbox is a STAND-IN for the real fnbox binary, used only by
// the deployer's tests while fnbox is written elsewhere. It accepts
// fnbox's command line, checks that --code holds butter.yaml, writes
// the ready file (control.ReadyFileFlag) as fnbox does and sleeps until
// SIGTERM, then exits 0. FAKEFNBOX_IGNORE_TERM=1 makes it ignore SIGTERM
// (to test the SIGKILL after the grace period). A descriptor holding the
// comment "fakefnbox: fail to load" makes it exit 78, as fnbox does when
// the code fails to load. With --pool DIR it plays a pool (see
// proto/control/pool.go): it writes DIR/pool.ready, runs each member file
// in DIR/members by writing the ready file its args name (or an exit file
// with LoadError when its descriptor says to fail), and writes a member's
// exit file once its member file is deleted.
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
	pool := fs.String(control.PoolFlag, "", "pool dir")
	_ = fs.String("pool-platform", "", "pool platform")
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "fnbox" { // BinArgs of the butter binary
		args = args[1:]
	}
	_ = fs.Parse(args)
	if *pool != "" {
		runPool(*pool)
		return
	}
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

// runPool plays `fnbox --pool dir` until SIGTERM.
func runPool(dir string) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, os.Interrupt)
	members := filepath.Join(dir, control.PoolMembersDir)
	write := func(path string, v any) {
		b, _ := json.Marshal(v)
		if err := os.WriteFile(path+".tmp", b, 0o644); err == nil {
			_ = os.Rename(path+".tmp", path)
		}
	}
	write(filepath.Join(dir, control.PoolReadyFile), control.ReadyFile{PID: os.Getpid(), Instance: "pool"})
	fmt.Println("fakefnbox pool running")
	running := map[string]bool{} // id: write an exit file when its member file goes
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-sigs:
			fmt.Println("fakefnbox pool stopping")
			return
		case <-tick.C:
		}
		entries, _ := os.ReadDir(members)
		seen := map[string]bool{}
		for _, e := range entries {
			id, ok := strings.CutSuffix(e.Name(), control.PoolMemberExt)
			if !ok {
				continue
			}
			seen[id] = true
			if _, ok := running[id]; ok {
				continue
			}
			running[id] = true
			b, err := os.ReadFile(filepath.Join(members, e.Name()))
			var m control.PoolMember
			if err == nil {
				err = json.Unmarshal(b, &m)
			}
			if err != nil {
				write(filepath.Join(members, id+control.PoolExitExt), control.PoolExit{Error: err.Error()})
				continue
			}
			args := map[string]string{}
			for i := 0; i+1 < len(m.Args); i++ {
				if name, ok := strings.CutPrefix(m.Args[i], "--"); ok {
					args[name] = m.Args[i+1]
				}
			}
			if d, _ := os.ReadFile(args["descriptor"]); strings.Contains(string(d), "fakefnbox: fail to load") {
				write(filepath.Join(members, id+control.PoolExitExt), control.PoolExit{Error: "handler.js:1: SyntaxError: Unexpected token", LoadError: true})
				running[id] = false
				continue
			}
			fmt.Printf("fakefnbox pool running instance %s, functions %s\n", m.Instance, args["functions"])
			write(args[control.ReadyFileFlag], control.ReadyFile{PID: os.Getpid(), Instance: m.Instance})
		}
		for id, live := range running {
			if !seen[id] {
				delete(running, id)
				if !live {
					continue
				}
				write(filepath.Join(members, id+control.PoolExitExt), control.PoolExit{})
			}
		}
	}
}
