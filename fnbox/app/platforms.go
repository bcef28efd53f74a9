package app

import (
	"github.com/buttercompass/butter/fnbox/box"
	"github.com/buttercompass/butter/fnbox/runtime/platforms"
	"github.com/buttercompass/butter/fnbox/runtime/stdio"
	"github.com/buttercompass/butter/proto/descriptor"
)

// registerPlatforms fills box.Platforms with every platform of this module,
// and box.Pools with those whose functions can share a host process.
func registerPlatforms() {
	for name, start := range platforms.All() {
		box.Platforms[name] = box.Platform(start)
	}
	for _, name := range []string{descriptor.PlatformNode, descriptor.PlatformPython} {
		box.Pools[name] = stdio.NewPool
	}
}
