package kit

import "errors"

// Errors returned (wrapped, with the offending flag and value) by
// [KafkaConfig.Opts]. Callers match them with errors.Is; the messages say
// how to fix the configuration.
var (
	// ErrNoBrokers means --brokers (BUTTER_BROKERS) resolved to no address.
	ErrNoBrokers = errors.New("no seed brokers: set --brokers or BUTTER_BROKERS to host:port[,host:port...]")

	// ErrSASLMechanism means --sasl-mechanism names a mechanism kit does not
	// speak.
	ErrSASLMechanism = errors.New("unknown SASL mechanism: use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")

	// ErrSASLIncomplete means only half of the SASL settings are present: a
	// mechanism without a user, or a user without a mechanism. Guessing
	// would fail later with an opaque authentication error from the broker.
	ErrSASLIncomplete = errors.New("incomplete SASL settings: set --sasl-mechanism, --sasl-user and --sasl-password together")

	// ErrTLSKeyPair means only one of --tls-cert and --tls-key is set; a
	// client certificate needs both.
	ErrTLSKeyPair = errors.New("incomplete client certificate: set both --tls-cert and --tls-key, or neither")

	// ErrNoPEM means a CA file was read but holds no PEM certificate, which
	// usually means it is DER encoded or the wrong file.
	ErrNoPEM = errors.New("no PEM certificates found")

	// ErrLogLevel means a log level other than debug, info, warn or error.
	ErrLogLevel = errors.New("unknown log level: use debug, info, warn or error")
)
