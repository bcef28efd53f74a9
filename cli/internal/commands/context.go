package commands

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/buttercompass/butter/broker-bridge/broker"
	"github.com/buttercompass/butter/proto/kit"
)

// ContextFile is the name of the client context butter up writes into its
// data dir: where every part it started listens.
const ContextFile = "context.json"

// clientContext is one platform's addresses: what butter up bound, so a
// client command needs one setting (--context, BUTTER_CONTEXT or --data)
// to reach every part of it.
type clientContext struct {
	// Brokers are the Kafka seed brokers, host:port.
	Brokers []string `json:"brokers"`
	// ClientConfig is the librdkafka properties file with the login,
	// relative to the context file's directory unless absolute.
	ClientConfig string `json:"clientConfig,omitempty"`
	// TopicPrefix namespaces every topic (--topic-prefix of up).
	TopicPrefix string `json:"topicPrefix,omitempty"`
	// Deployer, Gateway, Timer, Loadmon, Tracer, Bridge and Admin are base
	// URLs; Admin is butter up's own /readyz (the broker's health).
	Deployer string `json:"deployer,omitempty"`
	Gateway  string `json:"gateway,omitempty"`
	Timer    string `json:"timer,omitempty"`
	Loadmon  string `json:"loadmon,omitempty"`
	Tracer   string `json:"tracer,omitempty"`
	Bridge   string `json:"bridge,omitempty"`
	Admin    string `json:"admin,omitempty"`

	// path is where the context was read from; empty when none was.
	path string
}

// services are the parts a context names, in the order status shows
// them, with the env variable and the default of each.
var services = []struct {
	name, env, def string
	url            func(c *clientContext) *string
}{
	{"deployer", "BUTTER_DEPLOYER", "http://127.0.0.1:8081", func(c *clientContext) *string { return &c.Deployer }},
	{"gateway", "BUTTER_GATEWAY", "http://127.0.0.1:8080", func(c *clientContext) *string { return &c.Gateway }},
	{"timer", "BUTTER_TIMER", "http://127.0.0.1:8083", func(c *clientContext) *string { return &c.Timer }},
	{"loadmon", "BUTTER_LOADMON", "http://127.0.0.1:8084", func(c *clientContext) *string { return &c.Loadmon }},
	{"tracer", "BUTTER_TRACER", "http://127.0.0.1:8082", func(c *clientContext) *string { return &c.Tracer }},
	{"bridge", "BUTTER_BRIDGE", "http://127.0.0.1:8085", func(c *clientContext) *string { return &c.Bridge }},
	{"admin", "BUTTER_ADMIN", "http://127.0.0.1:8086", func(c *clientContext) *string { return &c.Admin }},
}

// contextPath is the context file a client command reads: --context
// (BUTTER_CONTEXT), which must exist, else <data>/context.json
// (--data, BUTTER_DATA, default ./.butter) when it exists.
func (a *app) contextPath() (path string, explicit bool) {
	if a.contextFile != "" {
		return a.contextFile, true
	}
	return filepath.Join(a.dataDir(), ContextFile), false
}

// dataDir is --data of a client command, else BUTTER_DATA, else ./.butter.
func (a *app) dataDir() string {
	if a.data != "" {
		return a.data
	}
	return kit.EnvOr("BUTTER_DATA", broker.DefaultConfig().DataDir)
}

// loadContext reads the client context once; a missing default file is an
// empty context, a missing or broken explicit one an error.
func (a *app) loadContext() (*clientContext, error) {
	if a.ccLoaded {
		return a.cc, a.ccErr
	}
	a.ccLoaded = true
	a.cc = &clientContext{}
	path, explicit := a.contextPath()
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
	case !explicit && errors.Is(err, fs.ErrNotExist):
		return a.cc, nil
	default:
		a.ccErr = fmt.Errorf("read the client context (--context, BUTTER_CONTEXT): %w", err)
		return a.cc, a.ccErr
	}
	if err := json.Unmarshal(b, a.cc); err != nil {
		a.ccErr = fmt.Errorf("read the client context %s: %w (butter up writes it; delete it or start butter up again)", path, err)
		return a.cc, a.ccErr
	}
	a.cc.path = path
	if a.cc.ClientConfig != "" && !filepath.IsAbs(a.cc.ClientConfig) {
		a.cc.ClientConfig = filepath.Join(filepath.Dir(path), a.cc.ClientConfig)
	}
	return a.cc, nil
}

// serviceURL is the base URL of a platform service: the command's flag
// (given), else its BUTTER_<SERVICE> variable, else the client context,
// else the default port on 127.0.0.1. host:port is taken as http://.
func (a *app) serviceURL(name, given string) (string, error) {
	for _, s := range services {
		if s.name != name {
			continue
		}
		if given != "" {
			return normalizeURL(given)
		}
		if v := os.Getenv(s.env); v != "" {
			return normalizeURL(v)
		}
		c, err := a.loadContext()
		if err != nil {
			return "", err
		}
		if u := *s.url(c); u != "" {
			return normalizeURL(u)
		}
		return s.def, nil
	}
	return "", fmt.Errorf("no service %q", name)
}

// normalizeURL accepts a URL or host:port (":8081" meaning 127.0.0.1) and
// returns a base URL without a trailing slash.
func normalizeURL(s string) (string, error) {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("%q is not a URL or host:port", strings.TrimPrefix(s, "http://"))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("%q: want an http:// or https:// URL, or host:port", s)
	}
	if host, port, err := net.SplitHostPort(u.Host); err == nil && host == "" {
		u.Host = net.JoinHostPort("127.0.0.1", port)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// hostPorts strips a scheme from broker addresses (kafka://host:9092),
// so URLs work wherever host:port is expected.
func hostPorts(list []string) []string {
	out := make([]string, 0, len(list))
	for _, b := range list {
		if _, rest, ok := strings.Cut(b, "://"); ok {
			b = strings.TrimRight(rest, "/")
		}
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

// dialable turns a listener's address into one a client can dial: an
// unspecified host (0.0.0.0, ::) becomes 127.0.0.1.
func dialable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// writeContext writes <dir>/context.json, mode 0600, atomically: the
// addresses butter up bound. A client config inside dir is written as a
// relative path, so the directory can be copied whole.
func writeContext(dir string, c clientContext) (string, error) {
	if c.ClientConfig != "" {
		if rel, err := filepath.Rel(dir, c.ClientConfig); err == nil && !strings.HasPrefix(rel, "..") {
			c.ClientConfig = rel
		}
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, ContextFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return "", fmt.Errorf("write the client context: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("write the client context: %w", err)
	}
	return path, nil
}

// upContext is what butter up writes: the cluster it uses and the
// address of every part.
func upContext(kafka kit.KafkaConfig, clientConfig string, addrs map[string]string) clientContext {
	c := clientContext{Brokers: kafka.Brokers, ClientConfig: clientConfig, TopicPrefix: kafka.TopicPrefix}
	for _, s := range services {
		if addr := addrs[s.name]; addr != "" {
			*s.url(&c) = "http://" + dialable(addr)
		}
	}
	return c
}

// useContext takes the brokers, their login and the topic prefix from the
// client context unless a flag or a BUTTER_* variable set them.
func (a *app) useContext() error {
	c, err := a.loadContext()
	if err != nil || c.path == "" {
		return err
	}
	if a.flagOrEnv("brokers", "BUTTER_BROKERS") || len(c.Brokers) == 0 {
		return nil
	}
	a.kafka.Brokers = c.Brokers
	if !a.flagOrEnv("topic-prefix", "BUTTER_TOPIC_PREFIX") {
		a.kafka.TopicPrefix = c.TopicPrefix
	}
	if a.clientConfig == "" && c.ClientConfig != "" {
		a.clientConfig = c.ClientConfig
	}
	return nil
}

// flagOrEnv tells whether a root flag was given or its variable is set.
func (a *app) flagOrEnv(flag, env string) bool {
	return os.Getenv(env) != "" || (a.rootCmd != nil && a.rootCmd.PersistentFlags().Changed(flag))
}
