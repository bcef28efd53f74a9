package kit

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// clearKafkaEnv unsets every BUTTER_* Kafka variable for the test, so the
// developer's shell does not leak into it.
func clearKafkaEnv(t *testing.T) {
	for _, k := range []string{
		"BUTTER_BROKERS", "BUTTER_TOPIC_PREFIX", "BUTTER_SASL_MECHANISM", "BUTTER_SASL_USER",
		"BUTTER_SASL_PASSWORD", "BUTTER_TLS", "BUTTER_TLS_CA", "BUTTER_TLS_CERT", "BUTTER_TLS_KEY",
		"BUTTER_TLS_INSECURE",
	} {
		t.Setenv(k, "")
	}
}

func parseKafkaFlags(t *testing.T, args ...string) KafkaConfig {
	t.Helper()
	var c KafkaConfig
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	c.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse %v: %v", args, err)
	}
	return c
}

func TestKafkaFlagsDefaults(t *testing.T) {
	clearKafkaEnv(t)
	c := parseKafkaFlags(t)
	if !slices.Equal(c.Brokers, []string{DefaultBrokers}) || c.TopicPrefix != "" || c.TLS || c.SASLMechanism != "" {
		t.Fatalf("defaults = %+v", c)
	}
	if _, err := c.Opts(); err != nil {
		t.Fatalf("Opts on defaults: %v", err)
	}
}

func TestKafkaFlagsEnvThenFlag(t *testing.T) {
	clearKafkaEnv(t)
	t.Setenv("BUTTER_BROKERS", " a:1, b:2 ,")
	t.Setenv("BUTTER_TOPIC_PREFIX", "env.")
	t.Setenv("BUTTER_SASL_MECHANISM", "SCRAM-SHA-512")
	t.Setenv("BUTTER_SASL_USER", "envuser")
	t.Setenv("BUTTER_SASL_PASSWORD", "envsecret")
	t.Setenv("BUTTER_TLS", "true")

	c := parseKafkaFlags(t)
	if !slices.Equal(c.Brokers, []string{"a:1", "b:2"}) {
		t.Errorf("env brokers = %q", c.Brokers)
	}
	if c.TopicPrefix != "env." || c.SASLMechanism != "SCRAM-SHA-512" || c.SASLUser != "envuser" ||
		c.SASLPassword != "envsecret" || !c.TLS {
		t.Errorf("env config = %+v", c)
	}
	if got := c.Namespace().Topic("orders"); got != "env.orders" {
		t.Errorf("Namespace().Topic = %q", got)
	}

	c = parseKafkaFlags(t, "--brokers=c:3", "--topic-prefix=flag.", "--sasl-mechanism=PLAIN",
		"--sasl-user=flaguser", "--sasl-password=flagsecret", "--tls=false")
	if !slices.Equal(c.Brokers, []string{"c:3"}) {
		t.Errorf("flag brokers = %q, want the flag to replace the env list", c.Brokers)
	}
	if c.TopicPrefix != "flag." || c.SASLMechanism != "PLAIN" || c.SASLUser != "flaguser" ||
		c.SASLPassword != "flagsecret" || c.TLS {
		t.Errorf("flag config = %+v", c)
	}
}

func TestKafkaFlagsHidePassword(t *testing.T) {
	clearKafkaEnv(t)
	t.Setenv("BUTTER_SASL_PASSWORD", "hunter2")
	var c KafkaConfig
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	c.RegisterFlags(fs)
	var help bytes.Buffer
	fs.SetOutput(&help)
	fs.PrintDefaults()
	if strings.Contains(help.String(), "hunter2") {
		t.Fatalf("help output shows the password:\n%s", help.String())
	}
	if c.SASLPassword != "hunter2" {
		t.Fatalf("password = %q, want the env value", c.SASLPassword)
	}
}

func TestKafkaFlagsBadEnvBool(t *testing.T) {
	clearKafkaEnv(t)
	t.Setenv("BUTTER_TLS", "yes please")
	c := parseKafkaFlags(t)
	_, err := c.Opts()
	if err == nil || !strings.Contains(err.Error(), "BUTTER_TLS") {
		t.Fatalf("Opts error = %v, want one naming BUTTER_TLS", err)
	}
	if err := EnvError(); err == nil || !strings.Contains(err.Error(), "BUTTER_TLS") {
		t.Fatalf("EnvError = %v, want one naming BUTTER_TLS", err)
	}
}

func TestOptsErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.der")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := KafkaConfig{Brokers: []string{"127.0.0.1:9092"}}
	with := func(f func(*KafkaConfig)) KafkaConfig { c := base; f(&c); return c }

	for _, tc := range []struct {
		name     string
		cfg      KafkaConfig
		is       error
		mentions string
	}{
		{"bad mechanism", with(func(c *KafkaConfig) { c.SASLMechanism, c.SASLUser = "GSSAPI", "u" }), ErrSASLMechanism, "--sasl-mechanism"},
		{"user without mechanism", with(func(c *KafkaConfig) { c.SASLUser = "u" }), ErrSASLIncomplete, "--sasl-mechanism"},
		{"mechanism without user", with(func(c *KafkaConfig) { c.SASLMechanism = "PLAIN" }), ErrSASLIncomplete, "--sasl-user"},
		{"missing CA file", with(func(c *KafkaConfig) { c.TLSCAFile = filepath.Join(dir, "nope.pem") }), fs.ErrNotExist, "--tls-ca"},
		{"CA not PEM", with(func(c *KafkaConfig) { c.TLSCAFile = notPEM }), ErrNoPEM, "--tls-ca"},
		{"cert without key", with(func(c *KafkaConfig) { c.TLSCertFile = notPEM }), ErrTLSKeyPair, "--tls-key"},
		{"no brokers", with(func(c *KafkaConfig) { c.Brokers = []string{" , "} }), ErrNoBrokers, "--brokers"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.cfg.Opts()
			if !errors.Is(err, tc.is) {
				t.Fatalf("Opts error = %v, want %v", err, tc.is)
			}
			if !strings.Contains(err.Error(), tc.mentions) {
				t.Fatalf("Opts error %q does not name %s", err, tc.mentions)
			}
			if _, err := tc.cfg.NewClient(); !errors.Is(err, tc.is) {
				t.Fatalf("NewClient error = %v, want %v", err, tc.is)
			}
		})
	}
}

func TestSASLAgainstBroker(t *testing.T) {
	_, cfg := newCluster(t,
		kfake.EnableSASL(),
		kfake.Superuser("PLAIN", "admin", "pw"),
		kfake.Superuser("SCRAM-SHA-256", "scram256", "pw256"),
		kfake.Superuser("SCRAM-SHA-512", "scram512", "pw512"),
	)
	for _, tc := range []struct {
		mech, user, pass string
		ok               bool
	}{
		{"PLAIN", "admin", "pw", true},
		{"plain", "admin", "pw", true}, // mechanism names are case-insensitive
		{"PLAIN", "admin", "wrong", false},
		{"SCRAM-SHA-256", "scram256", "pw256", true},
		{"SCRAM-SHA-256", "scram256", "wrong", false},
		{"SCRAM-SHA-512", "scram512", "pw512", true},
		{"SCRAM-SHA-512", "nobody", "pw512", false},
	} {
		t.Run(tc.mech+"/"+tc.pass, func(t *testing.T) {
			c := cfg
			c.SASLMechanism, c.SASLUser, c.SASLPassword = tc.mech, tc.user, tc.pass
			cl := newClient(t, c)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := KafkaReady(cl)(ctx)
			if tc.ok && err != nil {
				t.Fatalf("ping with right credentials: %v", err)
			}
			if !tc.ok && err == nil {
				t.Fatal("ping with wrong credentials succeeded")
			}
			if err != nil {
				t.Logf("ping: %v", err)
			}
		})
	}
}

func TestTLSAgainstBroker(t *testing.T) {
	caFile, serverCert := selfSigned(t)
	_, cfg := newCluster(t, kfake.TLS(&tls.Config{Certificates: []tls.Certificate{serverCert}, MinVersion: tls.VersionTLS12}))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	trusted := cfg
	trusted.TLSCAFile = caFile // implies TLS
	if err := KafkaReady(newClient(t, trusted))(ctx); err != nil {
		t.Fatalf("ping over TLS with the CA: %v", err)
	}

	untrusted := cfg
	untrusted.TLS = true // system pool: does not know our CA
	short, cancelShort := context.WithTimeout(ctx, 3*time.Second)
	defer cancelShort()
	if err := KafkaReady(newClient(t, untrusted))(short); err == nil {
		t.Fatal("ping over TLS without the CA succeeded")
	}
}

// selfSigned writes a CA-less self-signed certificate for 127.0.0.1 to a
// PEM file and returns the file and the key pair.
func selfSigned(t *testing.T) (string, tls.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kit-test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(file, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return file, pair
}

// TestArgsRoundTrip: a child process given Args (and its env) parses back
// the same Kafka settings, with the password only in env.
func TestArgsRoundTrip(t *testing.T) {
	want := KafkaConfig{
		Brokers: []string{"a:9092", "b:9092"}, TopicPrefix: "t1.",
		SASLMechanism: "SCRAM-SHA-256", SASLUser: "butter-fn.x", SASLPassword: "s3cret",
		TLS: true, TLSCAFile: "/ca.pem", TLSCertFile: "/c.pem", TLSKeyFile: "/k.pem", TLSInsecureSkipVerify: true,
	}
	args, env := want.Args()
	for _, a := range args {
		if strings.Contains(a, want.SASLPassword) {
			t.Fatalf("password in args %q", args)
		}
	}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	var got KafkaConfig
	fs := flag.NewFlagSet("child", flag.ContinueOnError)
	got.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	got.envErr = nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parsed back %+v, want %+v", got, want)
	}
}
