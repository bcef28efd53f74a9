//go:build !unix

package secrets

import "io/fs"

// ownedByRoot is false where files have no Unix owner: the strict rule
// (no group or other bits) applies.
func ownedByRoot(fs.FileInfo) bool { return false }
