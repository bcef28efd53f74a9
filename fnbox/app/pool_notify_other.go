//go:build !linux

package app

import "context"

// watchDir is inotify's on Linux; elsewhere the scan's ticker alone finds
// new and deleted members.
func watchDir(context.Context, string) <-chan struct{} { return nil }
