// Package cloudevents holds conformance tests of the platform's CloudEvents
// bindings against clients nobody here wrote: CloudEvents sdk-go's Kafka
// binding (protocol/kafka_sarama on IBM sarama) as sender and receiver
// against the embedded broker, in binary and structured content mode, with
// proto/envelope on the other side; and sdk-go's HTTP client.Request
// against the gateway (route mode cloudevents) and a real fnbox running a
// node function. It has no code of its own.
package cloudevents
