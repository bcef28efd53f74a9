package runtime

import "syscall"

// ProcAttr is how fnbox starts a function's processes: in a process group
// of their own, so stopping one stops what it started too, and killed with
// SIGKILL when fnbox dies, so an fnbox killed with SIGKILL leaves no
// function process behind to hold ports or memory.
func ProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
