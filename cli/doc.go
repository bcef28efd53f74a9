// Package cli is the root of the module holding the butter command: `butter
// up` runs the whole platform in one process and the other commands are
// clients of its streams and APIs.
package cli
