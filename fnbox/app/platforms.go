package app

import (
	"github.com/buttercompass/butter/fnbox/box"
	"github.com/buttercompass/butter/fnbox/runtime/platforms"
)

// registerPlatforms fills box.Platforms with every platform of this module.
func registerPlatforms() {
	for name, start := range platforms.All() {
		box.Platforms[name] = box.Platform(start)
	}
}
