// Package deployer is the root of the control-plane module: the HTTP API
// that accepts descriptors and code archives, keeps desired state on the
// compacted _butter.deployments topic, creates the streams descriptors
// name, and the container manager that runs fnbox instances to match.
// Package service runs it; cmd/butter-deployer is its binary.
package deployer
