// Package proto is the root of Butter Compass's shared contracts module.
//
// Everything the services agree on lives in a subpackage: topic names and
// specs (topics), the CloudEvents envelope on Kafka records (envelope), the
// deployment descriptor (descriptor) and the plumbing every service uses the
// same way (kit). The module imports no service.
package proto
