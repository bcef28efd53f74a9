// Package loadmon is the module of the load monitor: it decides how many
// instances each function runs from its consumer lag and its fnbox
// heartbeats, and publishes the decisions on _butter.scale for the
// deployer (DESIGN §7, docs/loadmon.md). The service package runs it;
// cmd/butter-loadmon is its binary.
package loadmon
