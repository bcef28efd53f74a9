//go:build !fnboxtest

package main

// registerTestPlatforms does nothing in a release build.
func registerTestPlatforms() {}
