//go:build unix

package secrets

import (
	"io/fs"
	"syscall"
)

// ownedByRoot reports whether root owns the file st describes.
func ownedByRoot(st fs.FileInfo) bool {
	s, ok := st.Sys().(*syscall.Stat_t)
	return ok && s.Uid == 0
}
