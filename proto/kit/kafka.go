package kit

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/buttercompass/butter/proto/topics"
)

// DefaultBrokers is where services look for Kafka when neither --brokers nor
// BUTTER_BROKERS says otherwise: the embedded broker of `butter up`
// (DESIGN §9).
const DefaultBrokers = "127.0.0.1:9092"

// DefaultClientID is the Kafka client id of a KafkaConfig without one, so
// broker logs and quotas can tell platform clients from others.
const DefaultClientID = "butter"

// SASL mechanisms accepted by --sasl-mechanism.
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

// KafkaConfig is how a service reaches Kafka. Every service registers the
// same flags with the same BUTTER_* env fallbacks, so one set of variables
// points a whole deployment at an existing cluster.
type KafkaConfig struct {
	// Brokers are the seed brokers (--brokers, BUTTER_BROKERS, comma
	// separated); default DefaultBrokers.
	Brokers []string
	// TopicPrefix namespaces every topic (--topic-prefix,
	// BUTTER_TOPIC_PREFIX) so several platforms can share one cluster;
	// default none.
	TopicPrefix string

	// SASLMechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512
	// (--sasl-mechanism, BUTTER_SASL_MECHANISM); default none, which turns
	// SASL off.
	SASLMechanism string
	// SASLUser is the SASL user name (--sasl-user, BUTTER_SASL_USER).
	SASLUser string
	// SASLPassword is the SASL password (--sasl-password,
	// BUTTER_SASL_PASSWORD). Prefer the env variable: flags show in ps.
	SASLPassword string

	// TLS dials brokers over TLS (--tls, BUTTER_TLS); default off. Setting
	// any TLS file or TLSInsecureSkipVerify implies it.
	TLS bool
	// TLSCAFile is a PEM bundle of CAs to trust instead of the system pool
	// (--tls-ca, BUTTER_TLS_CA).
	TLSCAFile string
	// TLSCertFile is a PEM client certificate for mutual TLS (--tls-cert,
	// BUTTER_TLS_CERT); needs TLSKeyFile.
	TLSCertFile string
	// TLSKeyFile is the PEM key of TLSCertFile (--tls-key, BUTTER_TLS_KEY).
	TLSKeyFile string
	// TLSInsecureSkipVerify accepts any broker certificate (--tls-insecure,
	// BUTTER_TLS_INSECURE). For tests against self-signed brokers only.
	TLSInsecureSkipVerify bool

	// ClientID is the Kafka client id; default DefaultClientID. Services
	// set it (e.g. "butter-gateway") rather than users, so it has no flag.
	ClientID string

	// envErr keeps a malformed BUTTER_TLS* boolean seen by RegisterFlags,
	// so Opts refuses to run with a setting the user did not mean.
	envErr error
}

// RegisterFlags registers the Kafka flags on fs. Defaults come from the
// BUTTER_* environment as it is now, so a flag on the command line beats the
// env, which beats the built-in default.
func (c *KafkaConfig) RegisterFlags(fs *flag.FlagSet) {
	c.Brokers = EnvList("BUTTER_BROKERS", []string{DefaultBrokers})
	fs.Var((*listValue)(&c.Brokers), "brokers", "comma-separated Kafka seed brokers (env BUTTER_BROKERS)")
	fs.StringVar(&c.TopicPrefix, "topic-prefix", EnvOr("BUTTER_TOPIC_PREFIX", ""), "prefix of every topic, to share a cluster (env BUTTER_TOPIC_PREFIX)")

	fs.StringVar(&c.SASLMechanism, "sasl-mechanism", EnvOr("BUTTER_SASL_MECHANISM", ""), "SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; empty disables SASL (env BUTTER_SASL_MECHANISM)")
	fs.StringVar(&c.SASLUser, "sasl-user", EnvOr("BUTTER_SASL_USER", ""), "SASL user (env BUTTER_SASL_USER)")
	c.SASLPassword = EnvOr("BUTTER_SASL_PASSWORD", "")
	fs.Var((*secretValue)(&c.SASLPassword), "sasl-password", "SASL password; prefer env BUTTER_SASL_PASSWORD, flags show in ps")

	var errTLS, errInsecure error
	c.TLS, errTLS = envBool("BUTTER_TLS", false)
	fs.BoolVar(&c.TLS, "tls", c.TLS, "dial brokers over TLS (env BUTTER_TLS)")
	fs.StringVar(&c.TLSCAFile, "tls-ca", EnvOr("BUTTER_TLS_CA", ""), "PEM file of CAs to trust instead of the system pool; implies --tls (env BUTTER_TLS_CA)")
	fs.StringVar(&c.TLSCertFile, "tls-cert", EnvOr("BUTTER_TLS_CERT", ""), "PEM client certificate for mutual TLS; implies --tls (env BUTTER_TLS_CERT)")
	fs.StringVar(&c.TLSKeyFile, "tls-key", EnvOr("BUTTER_TLS_KEY", ""), "PEM key of --tls-cert (env BUTTER_TLS_KEY)")
	c.TLSInsecureSkipVerify, errInsecure = envBool("BUTTER_TLS_INSECURE", false)
	fs.BoolVar(&c.TLSInsecureSkipVerify, "tls-insecure", c.TLSInsecureSkipVerify, "accept any broker certificate, for tests only; implies --tls (env BUTTER_TLS_INSECURE)")
	c.envErr = errors.Join(errTLS, errInsecure)
}

// Args renders c as the flags RegisterFlags reads, for a process this one
// starts (the deployer's fnbox instances): the password goes in env as
// BUTTER_SASL_PASSWORD, never in args, which show in ps.
func (c KafkaConfig) Args() (args, env []string) {
	args = []string{"--brokers", strings.Join(c.Brokers, ",")}
	add := func(flag, v string) {
		if v != "" {
			args = append(args, flag, v)
		}
	}
	add("--topic-prefix", c.TopicPrefix)
	add("--sasl-mechanism", c.SASLMechanism)
	add("--sasl-user", c.SASLUser)
	add("--tls-ca", c.TLSCAFile)
	add("--tls-cert", c.TLSCertFile)
	add("--tls-key", c.TLSKeyFile)
	if c.TLS {
		args = append(args, "--tls")
	}
	if c.TLSInsecureSkipVerify {
		args = append(args, "--tls-insecure")
	}
	if c.SASLPassword != "" {
		env = append(env, "BUTTER_SASL_PASSWORD="+c.SASLPassword)
	}
	return args, env
}

// Namespace returns the topic namespace of TopicPrefix.
func (c KafkaConfig) Namespace() topics.Namespace { return topics.Namespace(c.TopicPrefix) }

// Opts returns the franz-go options for this configuration: seed brokers,
// client id, SASL and TLS. Errors name the flag to fix.
func (c KafkaConfig) Opts() ([]kgo.Opt, error) {
	if c.envErr != nil {
		return nil, c.envErr
	}
	var brokers []string
	for _, b := range c.Brokers {
		brokers = append(brokers, splitList(b)...)
	}
	if len(brokers) == 0 {
		return nil, fmt.Errorf("check --brokers: %w", ErrNoBrokers)
	}
	id := c.ClientID
	if id == "" {
		id = DefaultClientID
	}
	opts := []kgo.Opt{kgo.SeedBrokers(brokers...), kgo.ClientID(id)}

	mech, err := c.saslMechanism()
	if err != nil {
		return nil, err
	}
	if mech != nil {
		opts = append(opts, kgo.SASL(mech))
	}

	tc, err := c.tlsConfig()
	if err != nil {
		return nil, err
	}
	if tc != nil {
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	return opts, nil
}

// NewClient returns a franz-go client for this configuration; extra options
// (consumer group, topics, producer settings) are applied after, so they win.
// The client connects lazily: an unreachable cluster shows up on first use
// or in [KafkaReady], not here.
func (c KafkaConfig) NewClient(extra ...kgo.Opt) (*kgo.Client, error) {
	opts, err := c.Opts()
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("create kafka client: %w", err)
	}
	return cl, nil
}

func (c KafkaConfig) saslMechanism() (sasl.Mechanism, error) {
	m := strings.ToUpper(strings.TrimSpace(c.SASLMechanism))
	switch {
	case m == "" && c.SASLUser == "" && c.SASLPassword == "":
		return nil, nil
	case m == "":
		return nil, fmt.Errorf("check --sasl-mechanism: --sasl-user is set but no mechanism: %w", ErrSASLIncomplete)
	case c.SASLUser == "":
		return nil, fmt.Errorf("check --sasl-user: --sasl-mechanism %s is set but no user: %w", m, ErrSASLIncomplete)
	}
	switch m {
	case SASLPlain:
		return plain.Auth{User: c.SASLUser, Pass: c.SASLPassword}.AsMechanism(), nil
	case SASLScramSHA256:
		return scram.Auth{User: c.SASLUser, Pass: c.SASLPassword}.AsSha256Mechanism(), nil
	case SASLScramSHA512:
		return scram.Auth{User: c.SASLUser, Pass: c.SASLPassword}.AsSha512Mechanism(), nil
	default:
		return nil, fmt.Errorf("check --sasl-mechanism %q: %w", c.SASLMechanism, ErrSASLMechanism)
	}
}

// tlsConfig returns nil when TLS is off. Files imply TLS because nobody sets
// a CA file for a plaintext listener; failing to dial TLS would be the
// surprise.
func (c KafkaConfig) tlsConfig() (*tls.Config, error) {
	if !c.TLS && c.TLSCAFile == "" && c.TLSCertFile == "" && c.TLSKeyFile == "" && !c.TLSInsecureSkipVerify {
		return nil, nil
	}
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: c.TLSInsecureSkipVerify, //nolint:gosec // opt-in flag documented as test-only
	}
	if c.TLSCAFile != "" {
		pem, err := os.ReadFile(c.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("read --tls-ca file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("load --tls-ca file %s: %w", c.TLSCAFile, ErrNoPEM)
		}
		tc.RootCAs = pool
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		return nil, fmt.Errorf("check --tls-cert and --tls-key: %w", ErrTLSKeyPair)
	}
	if c.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.TLSCertFile, c.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("load --tls-cert %s / --tls-key %s: %w", c.TLSCertFile, c.TLSKeyFile, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// KafkaReady returns an Admin ready check that passes while at least one
// broker answers a metadata request.
func KafkaReady(cl *kgo.Client) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		if err := cl.Ping(ctx); err != nil {
			return fmt.Errorf("ping kafka: %w", err)
		}
		return nil
	}
}

// listValue is a comma-separated flag that replaces, not appends: a user
// giving --brokers means "these brokers", not "these too".
type listValue []string

func (l *listValue) String() string {
	if l == nil {
		return ""
	}
	return strings.Join(*l, ",")
}

func (l *listValue) Set(s string) error {
	*l = splitList(s)
	return nil
}

// secretValue hides its value from -help output, where a default read from
// BUTTER_SASL_PASSWORD would otherwise be printed.
type secretValue string

func (s *secretValue) String() string { return "" }

func (s *secretValue) Set(v string) error {
	*s = secretValue(v)
	return nil
}
