package broker

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strconv"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/buttercompass/butter/proto/access"
	"github.com/buttercompass/butter/proto/kit"
)

// security returns the admin login and the kfake options of cfg. A secure
// broker keeps its admin password in DataDir/client.properties: the first
// start makes one, later starts read it back, so an operator's kcat -F
// keeps working. In memory (tests) the password lives as long as the
// broker.
func (c Config) security() (kit.ClientProperties, []kfake.Opt, error) {
	if !c.Secure {
		return kit.ClientProperties{}, nil, nil
	}
	admin := kit.ClientProperties{Mechanism: access.Mechanism, User: access.AdminUser}
	if path := c.ClientPropertiesPath(); path != "" {
		p, err := kit.ReadClientProperties(path)
		switch {
		case err == nil && p.User == access.AdminUser && p.Password != "":
			admin.Password = p.Password
		case err != nil && !errors.Is(err, fs.ErrNotExist):
			return admin, nil, fmt.Errorf("read the broker's admin login: %w", err)
		}
	}
	if c.AdminPassword != "" {
		admin.Password = c.AdminPassword
	}
	if admin.Password == "" {
		admin.Password = randomPassword()
	}
	return admin, []kfake.Opt{
		kfake.EnableSASL(),
		kfake.EnableACLs(),
		kfake.Superuser(access.Mechanism, admin.User, admin.Password),
	}, nil
}

// ClientPropertiesPath is where the broker writes the client configuration
// of its admin: DataDir/client.properties; empty in memory.
func (c Config) ClientPropertiesPath() string {
	if c.DataDir == "" {
		return ""
	}
	return filepath.Join(c.DataDir, kit.ClientPropertiesFile)
}

func (c Config) writeClientProperties(p kit.ClientProperties) error {
	path := c.ClientPropertiesPath()
	if path == "" {
		return nil
	}
	if err := kit.WriteClientProperties(path, p); err != nil {
		return fmt.Errorf("write the broker's client config: %w", err)
	}
	return nil
}

// sayAuth tells the operator how clients log in, loudly when nobody has to.
func (c Config) sayAuth(out io.Writer) {
	switch {
	case !c.Secure:
		fmt.Fprintln(out, "WARNING: --insecure-broker: any client that reaches the broker may read and write every topic, internal ones included")
	case c.DataDir != "":
		fmt.Fprintf(out, "clients log in with SASL/SCRAM-SHA-256: kcat -F %s ...\n", c.ClientPropertiesPath())
	}
}

// randomPassword returns 32 random bytes, URL-safe base64.
func randomPassword() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err)) // never on Linux ≥ 3.17
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// RandomPassword returns a new random password for a platform principal.
func RandomPassword() string { return randomPassword() }

// insecureFlag is --insecure-broker: a bool flag that clears Secure.
type insecureFlag struct{ secure *bool }

func (f insecureFlag) String() string {
	if f.secure == nil {
		return "false"
	}
	return strconv.FormatBool(!*f.secure)
}

func (f insecureFlag) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return err
	}
	*f.secure = !v
	return nil
}

func (insecureFlag) IsBoolFlag() bool { return true }
