package kit

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ClientPropertiesFile is the name of the client configuration `butter up`
// and `butter broker` write into the data directory (DESIGN §8a): the
// librdkafka properties format, so `kcat -F <data>/client.properties`
// works, and every `butter` client command reads it.
const ClientPropertiesFile = "client.properties"

// ErrClientProperties means a client.properties file holds something
// neither librdkafka nor kit would understand.
var ErrClientProperties = errors.New("bad client properties: want key=value lines (bootstrap.servers, security.protocol, sasl.mechanisms, sasl.username, sasl.password)")

// ClientProperties is the part of a librdkafka configuration file that
// says how to reach and log in to a cluster.
type ClientProperties struct {
	// Brokers are bootstrap.servers.
	Brokers []string
	// Mechanism, User and Password are sasl.mechanisms, sasl.username
	// and sasl.password; empty Mechanism means no SASL.
	Mechanism, User, Password string
}

// ParseClientProperties reads librdkafka's key=value format (# and !
// comments). Keys kit does not use are ignored, as librdkafka would use
// them; a line without '=' is an error naming its line.
func ParseClientProperties(data []byte) (ClientProperties, error) {
	var p ClientProperties
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == '!' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return p, fmt.Errorf("line %d: %w", n, ErrClientProperties)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch k {
		case "bootstrap.servers", "metadata.broker.list":
			p.Brokers = splitList(v)
		case "sasl.mechanisms", "sasl.mechanism":
			p.Mechanism = v
		case "sasl.username":
			p.User = v
		case "sasl.password":
			p.Password = v
		}
	}
	if err := sc.Err(); err != nil {
		return p, fmt.Errorf("read client properties: %w", err)
	}
	return p, nil
}

// Marshal writes p in librdkafka's format.
func (p ClientProperties) Marshal() []byte {
	var b bytes.Buffer
	b.WriteString("# Butter Compass client configuration (librdkafka format): kcat -F this-file\n")
	fmt.Fprintf(&b, "bootstrap.servers=%s\n", strings.Join(p.Brokers, ","))
	if p.Mechanism == "" {
		b.WriteString("security.protocol=PLAINTEXT\n")
		return b.Bytes()
	}
	b.WriteString("security.protocol=SASL_PLAINTEXT\n")
	fmt.Fprintf(&b, "sasl.mechanisms=%s\nsasl.username=%s\nsasl.password=%s\n", p.Mechanism, p.User, p.Password)
	return b.Bytes()
}

// ReadClientProperties reads a client.properties file. A file that others
// may read is refused: it holds a password.
func ReadClientProperties(path string) (ClientProperties, error) {
	st, err := os.Stat(path)
	if err != nil {
		return ClientProperties{}, fmt.Errorf("read client config: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return ClientProperties{}, fmt.Errorf("client config %s is readable by others (mode %v): chmod 600 it", path, st.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return ClientProperties{}, fmt.Errorf("read client config: %w", err)
	}
	p, err := ParseClientProperties(data)
	if err != nil {
		return p, fmt.Errorf("client config %s: %w", path, err)
	}
	return p, nil
}

// WriteClientProperties writes p to path with mode 0600, atomically, so
// a reader never sees half a password.
func WriteClientProperties(path string, p ClientProperties) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".client.properties-*")
	if err != nil {
		return fmt.Errorf("write client config: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(p.Marshal()); err != nil {
		tmp.Close()
		return fmt.Errorf("write client config: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write client config: %w", err)
	}
	// CreateTemp already makes the file 0600; say so for the reader.
	if err := os.Chmod(tmp.Name(), 0o600); err != nil {
		return fmt.Errorf("write client config: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write client config: %w", err)
	}
	return nil
}

// UseClientProperties fills what c does not set from p: brokers when c
// has none or only the default, and the SASL login when c has none. Settings
// given by flag or env win over the file.
func (c *KafkaConfig) UseClientProperties(p ClientProperties) {
	if len(p.Brokers) > 0 && (len(c.Brokers) == 0 || strings.Join(c.Brokers, ",") == DefaultBrokers) {
		c.Brokers = p.Brokers
	}
	if c.SASLMechanism == "" && c.SASLUser == "" {
		c.SASLMechanism, c.SASLUser, c.SASLPassword = p.Mechanism, p.User, p.Password
	}
}

// ClientProperties returns c as a client.properties.
func (c KafkaConfig) ClientProperties() ClientProperties {
	return ClientProperties{Brokers: c.Brokers, Mechanism: c.SASLMechanism, User: c.SASLUser, Password: c.SASLPassword}
}
