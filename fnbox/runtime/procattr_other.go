//go:build !linux

package runtime

import "syscall"

// ProcAttr is how fnbox starts a function's processes: in a process group
// of their own, so stopping one stops what it started too. (Only Linux
// can also tie their lives to fnbox's.)
func ProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
