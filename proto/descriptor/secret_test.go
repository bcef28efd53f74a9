package descriptor

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

const secretBase = "name: a\nplatform: node\nfunctions: [{fn: a.js:f, bindings: {streams: [s]}}]\n"

func TestSecretEnvParses(t *testing.T) {
	want := map[string]string{"DB_PASSWORD": "hunter2", "TOKEN": "a: b # not a comment"}
	for name, src := range map[string]string{
		"block": secretBase + "env: {LOG_LEVEL: info}\nsecretEnv:\n  DB_PASSWORD: hunter2\n  TOKEN: \"a: b # not a comment\"\n",
		"flow":  secretBase + "secretEnv: { DB_PASSWORD: hunter2, TOKEN: 'a: b # not a comment' }\n",
		"json": `{"name":"a","platform":"node","functions":[{"fn":"a.js:f","bindings":{"streams":["s"]}}],` +
			`"secretEnv":{"DB_PASSWORD":"hunter2","TOKEN":"a: b # not a comment"}}`,
	} {
		t.Run(name, func(t *testing.T) {
			d := mustParse(t, src)
			if !reflect.DeepEqual(d.SecretEnv, want) {
				t.Fatalf("SecretEnv = %q, want %q", d.SecretEnv, want)
			}
		})
	}
}

func TestSecretEnvProblems(t *testing.T) {
	for _, c := range []struct{ src, want string }{
		{"secretEnv: [a]\n", "t.yaml:4:12 secretEnv: expected a mapping of environment variable names to secret values, got a list"},
		{"secretEnv: {A: }\n", "t.yaml:4:16 secretEnv.A: give the secret's value, or remove the name"},
		{"secretEnv: {A: [x]}\n", "t.yaml:4:16 secretEnv.A: expected a string, got a list"},
		{"secretEnv: {1A: x}\n", `t.yaml:4:13 secretEnv["1A"]: "1A" is not an environment variable name: use letters, digits and _, not starting with a digit`},
		{"secretEnv: {BUTTER_X: x}\n", "t.yaml:4:13 secretEnv.BUTTER_X: names starting BUTTER_ are reserved for the platform"},
		{"secretEnv: {LD_PRELOAD: x}\n", "t.yaml:4:13 secretEnv.LD_PRELOAD: LD_PRELOAD is read by fnbox itself, which would get the secret too: secrets cannot be PATH, HOME, TMPDIR, LD_*, OTEL_* or Go runtime settings; put it in env"},
		{"env: {A: x}\nsecretEnv: {A: y}\n", "t.yaml:5:13 secretEnv.A: A is also set in env: keep it in one of them"},
		{"x-s: &s hunter2\nsecretEnv: {A: *s}\n", "t.yaml:5:16 secretEnv.A: a secret cannot be an alias (*s): write each secret in secretEnv itself, so the deployer can replace it with its encrypted form"},
		{"env: {A: &s hunter2}\nsecretEnv: {B: *s}\n", "t.yaml:5:16 secretEnv.B: a secret cannot be an alias (*s): write each secret in secretEnv itself, so the deployer can replace it with its encrypted form"},
		{"secretEnv: {A: &s hunter2}\nenv: {B: *s}\n", "t.yaml:4:16 secretEnv.A: a secret cannot have an anchor (&s): write each secret in secretEnv itself, so the deployer can replace it with its encrypted form"},
		{"x-s: &s {A: hunter2}\nsecretEnv: *s\n", "t.yaml:5:12 secretEnv: secretEnv cannot have an anchor (&s) or be an alias: write each secret in secretEnv itself, so the deployer can replace it with its encrypted form"},
		{"x-s: &s {A: hunter2}\nsecretEnv: {<<: *s}\n", "t.yaml:5:13 secretEnv: secretEnv cannot merge (<<) other mappings: write each secret in secretEnv itself, so the deployer can replace it with its encrypted form"},
		{"secretEnv: {A: " + strings.Repeat("x", MaxSecretSize+1) + "}\n", fmt.Sprintf("t.yaml:4:13 secretEnv.A: the secret is %d bytes; the most is %d (64 KiB)", MaxSecretSize+1, MaxSecretSize)},
	} {
		got := problemsOf(t, secretBase+c.src)
		if len(got) != 1 || got[0] != c.want {
			t.Errorf("%q:\n got %q\nwant %q", c.src, got, c.want)
		}
	}
	// A sealed value may be longer than a plain one: it is the deployer's.
	mustParse(t, secretBase+"secretEnv: {A: "+SealedPrefix+strings.Repeat("x", MaxSecretSize*2)+"}\n")
}

// fakeSeal stands in for the deployer's encryption.
func fakeSeal(name, value string) (string, error) {
	if strings.HasPrefix(value, SealedPrefix) {
		return value, nil
	}
	return SealedPrefix + "v1:" + name + ":" + fmt.Sprint(len(value)), nil
}

func TestSealSecrets(t *testing.T) {
	for _, c := range []struct {
		name, src string
		// kept is true when the text is edited in place (else rewritten).
		kept bool
	}{
		{"plain", secretBase + "secretEnv:\n  DB_PASSWORD: hunter2   # the password\n  B: x\n", true},
		{"flow", secretBase + "secretEnv: {DB_PASSWORD: hunter2, B: 'x'}\n", true},
		{"quoted multi-line", secretBase + "secretEnv:\n  DB_PASSWORD: \"hun\\\"\n    ter2\"\n  B: 'it''s x'\n", true},
		{"json", `{"name":"a","platform":"node","functions":[{"fn":"a.js:f","bindings":{"streams":["s"]}}],` + "\n" +
			`"secretEnv":{"DB_PASSWORD":"hunter2 \u00e9\/\ud83d\ude00","B":"x"}}`, true},
		{"block literal", secretBase + "secretEnv:\n  DB_PASSWORD: |\n    hunter2\n    more\n  B: x\n", false},
		{"plain multi-line", secretBase + "secretEnv:\n  DB_PASSWORD: hunter2\n    more\n  B: x\n", false},
		{"tagged", secretBase + "secretEnv:\n  DB_PASSWORD: !!str hunter2\n  B: x\n", false},
		{"already sealed", secretBase + "secretEnv:\n  DB_PASSWORD: hunter2\n  B: " + SealedPrefix + "v1:B:1\n", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := mustParse(t, c.src)
			out, got, err := SealSecrets("t.yaml", []byte(c.src), fakeSeal)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(out, []byte("hunter2")) || bytes.Contains(out, []byte("ter2")) {
				t.Fatalf("plain text left in:\n%s", out)
			}
			want := map[string]string{}
			for k, v := range before.SecretEnv {
				want[k], _ = fakeSeal(k, v)
			}
			if !reflect.DeepEqual(got.SecretEnv, want) {
				t.Fatalf("SecretEnv = %q, want %q", got.SecretEnv, want)
			}
			if reparsed := mustParse(t, string(out)); !reflect.DeepEqual(reparsed, got) {
				t.Fatalf("stored form parses to %+v, want %+v", reparsed, got)
			}
			if c.kept {
				// Only the values changed: every line count and every line
				// without a secret is the same.
				a, b := strings.Split(c.src, "\n"), strings.Split(string(out), "\n")
				if len(a) != len(b) || a[0] != b[0] {
					t.Fatalf("text not kept:\n%s\n---\n%s", c.src, out)
				}
			}
		})
	}
}

func TestSealSecretsNone(t *testing.T) {
	src := []byte(secretBase + "env: {A: b}\n")
	out, _, err := SealSecrets("t.yaml", src, func(string, string) (string, error) {
		t.Fatal("seal called without secrets")
		return "", nil
	})
	if err != nil || !bytes.Equal(out, src) {
		t.Fatalf("SealSecrets = %q, %v; want the source unchanged", out, err)
	}
}

func TestSealSecretsErrors(t *testing.T) {
	src := []byte(secretBase + "secretEnv: {A: b}\n")
	boom := errors.New("boom")
	if _, _, err := SealSecrets("t.yaml", src, func(string, string) (string, error) { return "", boom }); err == nil || err.Error() != "t.yaml:4:16 secretEnv.A: boom" {
		t.Fatalf("seal error = %v, want a problem at the value", err)
	}
	if _, _, err := SealSecrets("t.yaml", src, func(string, string) (string, error) { return `a"b`, nil }); !errors.Is(err, ErrSealed) {
		t.Fatalf("quote in sealed value: %v, want ErrSealed", err)
	}
	var ps Problems
	if _, _, err := SealSecrets("t.yaml", []byte(secretBase+"secretEnv: {A: }\n"), fakeSeal); !errors.As(err, &ps) {
		t.Fatalf("invalid descriptor: %v, want Problems", err)
	}
	big := func(string, string) (string, error) { return SealedPrefix + strings.Repeat("x", MaxSize), nil }
	if _, _, err := SealSecrets("t.yaml", src, big); !errors.As(err, &ps) || !strings.Contains(err.Error(), "with its secrets encrypted") {
		t.Fatalf("too big once sealed: %v, want a Problem", err)
	}
}

// FuzzSealSecrets checks that any descriptor with secrets is stored with
// each secret replaced and nothing else changed.
func FuzzSealSecrets(f *testing.F) {
	for _, s := range []string{
		secretBase + "secretEnv: {A: hunter2}\n",
		secretBase + "secretEnv:\n  A: \"x\\\"y\n z\"\n  B: |\n    k\n",
		`{"name":"a","platform":"node","functions":[{"fn":"a.js:f","bindings":{"streams":["s"]}}],"secretEnv":{"A":"\/\ud83d\ude00"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		before, err := Parse("f.yaml", data)
		if err != nil {
			return
		}
		out, got, err := SealSecrets("f.yaml", data, fakeSeal)
		if err != nil {
			var ps Problems
			if errors.As(err, &ps) && strings.Contains(err.Error(), "with its secrets encrypted") {
				return
			}
			t.Fatalf("SealSecrets: %v", err)
		}
		for k, v := range before.SecretEnv {
			if want, _ := fakeSeal(k, v); got.SecretEnv[k] != want {
				t.Fatalf("secretEnv.%s = %q, want %q", k, got.SecretEnv[k], want)
			}
		}
		if _, err := Parse("f.yaml", out); err != nil {
			t.Fatalf("stored form does not parse: %v\n%s", err, out)
		}
	})
}

// FuzzSealSecretValue writes any value in each way YAML and JSON can hold
// it, beside other fields on the same and the next lines, and checks that
// sealing replaces exactly the value.
func FuzzSealSecretValue(f *testing.F) {
	for _, v := range []string{"hunter2", `a"b\c`, "x\ny", "  lead", "a: b # c", "'q'", "é😀\u0085", "-", "[1]"} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, value string) {
		if !utf8.ValidString(value) || len(value) > 1000 {
			return
		}
		jsonValue, _ := json.Marshal(value)
		forms := map[string]string{
			"double": secretBase + "secretEnv: {A: " + strconv.Quote(value) + ", B: x}\nenv: {C: d}\n",
			"block":  secretBase + "secretEnv:\n  A: " + strconv.Quote(value) + "   # c\n  B: x\n",
			"single": secretBase + "secretEnv: {A: '" + strings.ReplaceAll(value, "'", "''") + "', B: x}\n",
			"plain":  secretBase + "secretEnv:\n  A: " + value + "\n  B: x\n",
			"json": `{"name":"a","platform":"node","functions":[{"fn":"a.js:f","bindings":{"streams":["s"]}}],"secretEnv":{"A":` +
				string(jsonValue) + `,"B":"x"},"env":{"C":"d"}}`,
		}
		for form, src := range forms {
			before, err := Parse("f.yaml", []byte(src))
			if err != nil || before.SecretEnv["A"] != value {
				continue // this form cannot hold this value as written
			}
			out, got, err := SealSecrets("f.yaml", []byte(src), fakeSeal)
			if err != nil {
				t.Fatalf("%s: %v\n%s", form, err, src)
			}
			wantA, _ := fakeSeal("A", value)
			if got.SecretEnv["A"] != wantA || got.SecretEnv["B"] != SealedPrefix+"v1:B:1" || !reflect.DeepEqual(got.Env, before.Env) {
				t.Fatalf("%s: sealed %q, env %q\n%s", form, got.SecretEnv, got.Env, out)
			}
		}
	})
}

func TestSealSecretsLarge(t *testing.T) {
	var b strings.Builder
	b.WriteString(secretBase + "secretEnv:\n")
	for i := range MaxSecrets {
		fmt.Fprintf(&b, "  S%d: %s\n", i, strings.Repeat("v", 900))
	}
	src := []byte(b.String())
	start := time.Now()
	out, got, err := SealSecrets("t.yaml", src, fakeSeal)
	if err != nil || len(got.SecretEnv) != MaxSecrets || bytes.Contains(out, []byte("vvv")) {
		t.Fatalf("SealSecrets of %d bytes: %v", len(src), err)
	}
	t.Logf("sealed %d secrets in a %d-byte descriptor in %v", MaxSecrets, len(src), time.Since(start))
	if ps := problemsOf(t, b.String()+"  S1000: x\n"); len(ps) != 1 || !strings.Contains(ps[0], "1001 secrets; the most is 1000") {
		t.Fatalf("too many secrets: %q", ps)
	}
}
