package app

import (
	"context"
	"syscall"
)

// watchDir returns a channel that receives when a file in dir is created,
// renamed into or out of it, or deleted (inotify), so a new member starts
// without waiting for the next scan; nil if dir cannot be watched (the
// scan's ticker still finds everything).
func watchDir(ctx context.Context, dir string) <-chan struct{} {
	fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC)
	if err != nil {
		return nil
	}
	if _, err := syscall.InotifyAddWatch(fd, dir, syscall.IN_CREATE|syscall.IN_DELETE|syscall.IN_MOVED_TO|syscall.IN_MOVED_FROM); err != nil {
		syscall.Close(fd)
		return nil
	}
	changed := make(chan struct{}, 1)
	go func() {
		<-ctx.Done()
		syscall.Close(fd) // ends the blocked read below
	}()
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := syscall.Read(fd, buf)
			if err == syscall.EINTR {
				continue
			}
			if err != nil || n <= 0 || ctx.Err() != nil {
				return
			}
			select {
			case changed <- struct{}{}:
			default: // a scan is already due
			}
		}
	}()
	return changed
}
