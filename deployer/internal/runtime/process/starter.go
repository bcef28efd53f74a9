package process

import (
	"os/exec"
	goruntime "runtime"
	"sync"
)

// Instances of `butter up` die with it (Config.DieWithParent) through the
// kernel's parent-death signal: SIGKILL as soon as their parent is gone,
// however it went (kill -9 included), so no instance of a dead platform
// keeps consuming with old code.
//
// Linux sends that signal when the *thread* that forked the child exits,
// not the process, and Go moves goroutines between threads and may end
// idle ones. So every such child is forked from one goroutine locked to
// its OS thread that never returns nor unlocks: its thread lives exactly
// as long as the process. (Go's fork also checks that the parent did not
// die before the signal was armed.)

// lockedStarter runs cmd.Start on the thread that lives as long as the
// process.
var lockedStarter = sync.OnceValue(func() chan<- func() {
	reqs := make(chan func())
	go func() {
		goruntime.LockOSThread() // never unlocked: see above
		for f := range reqs {
			f()
		}
	}()
	return reqs
})

// startTied starts cmd from the long-lived locked thread.
func startTied(cmd *exec.Cmd) error {
	done := make(chan error, 1)
	lockedStarter() <- func() { done <- cmd.Start() }
	return <-done
}
