// Package kit is the plumbing every Butter Compass service uses the same way:
// Kafka client options from flags and BUTTER_* env (with SASL and TLS),
// topic creation, JSON slog loggers with fixed keys, OpenTelemetry tracing
// exported through Kafka (and OTLP/HTTP when configured), the admin HTTP
// server (/livez, /readyz, /metrics) and RFC 9457 problem responses.
//
// It exists so that a service's main only wires: every knob a user can turn
// on one service turns the same way on all of them (DESIGN §8, §9).
package kit
