// Package timer is the module of the timer: it emits tick events on cron
// schedules, exactly once per scheduled time across any number of
// replicas (DESIGN §7). The service package runs it; cmd/butter-timer is
// its binary.
package timer
