// Command bench-exec is the no-op function the bench runs on the exec
// platform, one process per invocation: it reads the event (or the batch)
// on stdin and answers {"n": events handed over}. It imports next to
// nothing, so its start-up is the platform's cost and not its own (the Go
// SDK's net/http alone costs several milliseconds per process).
package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
)

func main() {
	in, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-exec: read event:", err)
		os.Exit(1)
	}
	// Every structured CloudEvent has exactly one specversion member.
	n := max(1, bytes.Count(in, []byte(`"specversion"`)))
	fmt.Printf("{\"n\":%d}\n", n)
}
