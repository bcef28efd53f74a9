// Package gateway is the module of the HTTP gateway: it turns requests on
// deployed routes into request events and answers with the reply event
// (DESIGN §7). The service package runs it; cmd/butter-gateway is its
// binary.
package gateway
