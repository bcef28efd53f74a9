// Package control holds the control-plane contracts: the Deployment record
// the deployer keeps on the compacted _butter.deployments topic, and the
// platform events (DESIGN §8) every control-plane action writes to
// _butter.events, with the Recorder that writes them.
//
// Readers of _butter.deployments decode a record with DecodeDeployment and
// re-derive the parsed descriptor with Deployment.Parse: the record keeps
// the descriptor exactly as submitted, so problems found later still point
// at the user's own lines.
package control
