// Command fnbox is the function container (package app): the deployer
// runs one per instance. `butter fnbox` is the same program inside the
// butter binary; this one stays for images that hold nothing else.
package main

import (
	"os"

	"github.com/buttercompass/butter/fnbox/app"
)

func main() { os.Exit(app.Main(os.Args[1:])) }
