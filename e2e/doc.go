// Package e2e is the root of the e2e module: end-to-end tests that run the
// parts of Butter Compass as separate processes, and butter-bench, which
// measures what this machine can do on the embedded broker so every later
// figure has a raw Kafka limit from the same run to be compared with.
package e2e
