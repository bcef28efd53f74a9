package runtime

import (
	"slices"

	"github.com/buttercompass/butter/proto/descriptor"
)

// Limits is what one instance may use, the same under every runtime: the
// process runtime writes it to cgroups, the docker runtime gives it to
// Docker.
type Limits struct {
	Memory   int64 // bytes; 0 is no limit
	MilliCPU int64 // thousandths of a core; 0 is no limit
	// NodeHeapMiB is node's --max-old-space-size; 0 leaves node's default.
	NodeHeapMiB int64
}

// InstanceLimits sums the limits of the functions an instance hosts: a
// limit applies only when every hosted function sets it, and memory gets
// overhead for fnbox itself. A node function also gets a V8 heap of 3/4 of
// its share, so V8 collects garbage before the kernel kills.
func InstanceLimits(desc *descriptor.Descriptor, functions []string, overhead int64) Limits {
	var l Limits
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
		l.Memory = mem + overhead
		if desc.Platform == descriptor.PlatformNode {
			l.NodeHeapMiB = max(16, mem*3/4>>20)
		}
	}
	if any && cpuAll {
		l.MilliCPU = cpu
	}
	return l
}
