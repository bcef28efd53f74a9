package docker

import (
	"time"

	"github.com/moby/moby/client"
)

// watchOOM counts the engine's "oom" events of this platform's
// containers by instance: the kernel killed a process in the container's
// cgroup for going over its memory limit. Usually that is the function's
// node or python process, which fnbox restarts, so the container lives
// on and its state's OOMKilled never shows it; the event does. It
// resubscribes after an error until Close.
func (r *Runtime) watchOOM() {
	r.tails.Go(func() {
		for r.tailCtx.Err() == nil {
			res := r.cli.Events(r.tailCtx, client.EventsListOptions{Filters: make(client.Filters).
				Add("type", "container").Add("event", "oom").Add("label", LabelPlatform+"="+r.platform)})
		read:
			for {
				select {
				case m, ok := <-res.Messages:
					if !ok {
						break read
					}
					id := m.Actor.Attributes[LabelInstance]
					if id == "" {
						continue
					}
					r.mu.Lock()
					r.ooms[id]++
					r.mu.Unlock()
					r.log.Warn("container process killed for going over its memory limit", "instance", id)
				case err, ok := <-res.Err:
					if ok && err != nil && r.tailCtx.Err() == nil {
						r.log.Warn("docker events interrupted, resubscribing", "error", err)
					}
					break read
				case <-r.tailCtx.Done():
					return
				}
			}
			select {
			case <-r.tailCtx.Done():
			case <-time.After(time.Second):
			}
		}
	})
}
