package main

import (
	"github.com/buttercompass/butter/fnbox/box"
	"github.com/buttercompass/butter/fnbox/runtime/exec"
	"github.com/buttercompass/butter/fnbox/runtime/stdio"
	"github.com/buttercompass/butter/proto/descriptor"
)

// registerPlatforms fills box.Platforms with the runtimes this binary is
// built with: stdio hosts node and python functions, exec runs a command
// per event. Other platform packages (http, go) register here, one line
// each. registerTestPlatforms adds stand-ins for platforms still missing
// when built with -tags fnboxtest.
func registerPlatforms() {
	box.Platforms[descriptor.PlatformNode] = stdio.Start
	box.Platforms[descriptor.PlatformPython] = stdio.Start
	box.Platforms[descriptor.PlatformExec] = exec.Start
	registerTestPlatforms()
}
