package docker

import (
	"slices"

	"github.com/buttercompass/butter/proto/descriptor"
)

// limits is what one container may use, enforced by Docker (cgroups):
// the same sums as the process runtime's, so a function gets the same
// limits under either runtime.
type limits struct {
	memory   int64 // bytes; 0 is no limit
	milliCPU int64 // thousandths of a core; 0 is no limit
	// nodeHeapMiB is node's --max-old-space-size; 0 leaves node's default.
	nodeHeapMiB int64
}

// instanceLimits sums the limits of the functions a container hosts: a
// limit applies only when every hosted function sets it, and memory gets
// overhead for fnbox itself. A node function also gets a V8 heap of 3/4
// of its share, so V8 collects garbage before the kernel kills.
func instanceLimits(desc *descriptor.Descriptor, functions []string, overhead int64) limits {
	var l limits
	var mem, cpu int64
	memAll, cpuAll, any := true, true, false
	for _, f := range desc.Functions {
		if !slices.Contains(functions, f.Name) {
			continue
		}
		any = true
		if m := f.Limits.MemoryBytes(); m > 0 {
			mem += m
		} else {
			memAll = false
		}
		if c := f.Limits.MilliCPU(); c > 0 {
			cpu += c
		} else {
			cpuAll = false
		}
	}
	if any && memAll {
		l.memory = mem + overhead
		if desc.Platform == descriptor.PlatformNode {
			l.nodeHeapMiB = max(16, mem*3/4>>20)
		}
	}
	if any && cpuAll {
		l.milliCPU = cpu
	}
	return l
}
