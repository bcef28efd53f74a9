// Package brokerbridge is the root of the broker-bridge module: the embedded
// Kafka-protocol broker (package broker) and, later, the bridge that maps
// outside events onto streams and back.
package brokerbridge
