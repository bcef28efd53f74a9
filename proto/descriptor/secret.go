package descriptor

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// This file holds secretEnv: how it is decoded, its rules, and
// SealSecrets, which the deployer uses to replace each secret value by
// its encrypted form in the descriptor it stores.

// SealedPrefix starts a secret value the deployer has encrypted. The
// deployer stores secretEnv values in this form (the rest of the format
// is the deployer's) and accepts it back in a descriptor it is sent, so a
// stored descriptor can be deployed again; any other value is plain text.
const SealedPrefix = "butter:sealed:"

// MaxSecretSize bounds one plain-text secret value. Linux refuses an
// environment string over 128 KiB at exec; half of that leaves room for
// the name and for the encrypted form in a descriptor of MaxSize.
const MaxSecretSize = 64 << 10

// MaxSecrets bounds the secrets of one descriptor; far above real use, it
// keeps the environment of an instance under what exec accepts.
const MaxSecrets = 1000

// fnboxEnv are names fnbox itself reads from its environment: a secret
// reaches the function through fnbox's environment, so one of these would
// change fnbox too, not only the function. Prefixes end with "_".
var fnboxEnv = []string{"PATH", "HOME", "TMPDIR", "LD_", "OTEL_", "GODEBUG", "GOGC", "GOMAXPROCS", "GOMEMLIMIT", "GOTRACEBACK"}

// secretMap decodes secretEnv: a mapping of names to values written in
// place. Anchors, aliases and merges are refused: SealSecrets replaces each
// value where it is written, and a value shared with another field would
// be replaced there too (or be left in plain text).
func (d *decoder) secretMap(path string, n *yaml.Node) map[string]string {
	const inPlace = "write each secret in secretEnv itself, so the deployer can replace it with its encrypted form"
	if n.Kind != yaml.MappingNode {
		d.expected(n, path, "a mapping of environment variable names to secret values")
		return nil
	}
	if n.Anchor != "" {
		// At the field, not at the anchor: with an alias that is elsewhere.
		at := d.pos[path]
		d.probs = append(d.probs, Problem{File: d.file, Line: at.line, Column: at.col, Field: path,
			Message: fmt.Sprintf("secretEnv cannot have an anchor (&%s) or be an alias: %s", n.Anchor, inPlace)})
		d.broken[path] = true
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i]; k.Kind == yaml.ScalarNode && k.Value == "<<" && k.ShortTag() == "!!merge" {
			d.fail(k, path, "secretEnv cannot merge (<<) other mappings: %s", inPlace)
			return nil
		}
	}
	if d.secrets == nil {
		d.secrets = map[string]*yaml.Node{}
	}
	out := map[string]string{}
	for _, p := range d.pairs(path, n) {
		kp := key(path, p.key.Value)
		d.pos[kp] = d.at(p.key)
		if p.val.Kind == yaml.AliasNode {
			d.fail(p.val, kp, "a secret cannot be an alias (*%s): %s", p.val.Value, inPlace)
			continue
		}
		v := d.resolve(p.val)
		if v == nil {
			return out
		}
		switch {
		case isNull(v):
			d.fail(p.val, kp, "give the secret's value, or remove the name")
			continue
		case v.Anchor != "":
			d.fail(v, kp, "a secret cannot have an anchor (&%s): %s", v.Anchor, inPlace)
			continue
		}
		if s, ok := d.str(kp, v); ok {
			out[p.key.Value] = s
			d.secrets[p.key.Value] = v
		}
	}
	return out
}

// secretEnv checks the names and sizes of secretEnv.
func (c checker) secretEnv(desc *Descriptor) {
	if n := len(desc.SecretEnv); n > MaxSecrets {
		c.report("secretEnv", "%d secrets; the most is %d", n, MaxSecrets)
		return
	}
	for k, v := range desc.SecretEnv {
		p := key("secretEnv", k)
		switch {
		case !envPattern.MatchString(k):
			c.report(p, "%q is not an environment variable name: use letters, digits and _, not starting with a digit", k)
		case strings.HasPrefix(strings.ToUpper(k), "BUTTER_"):
			c.report(p, "names starting BUTTER_ are reserved for the platform")
		case fnboxReads(k):
			c.report(p, "%s is read by fnbox itself, which would get the secret too: secrets cannot be PATH, HOME, TMPDIR, LD_*, OTEL_* or Go runtime settings; put it in env", k)
		case hasKey(desc.Env, k):
			c.report(p, "%s is also set in env: keep it in one of them", k)
		case len(v) > MaxSecretSize && !strings.HasPrefix(v, SealedPrefix):
			c.report(p, "the secret is %d bytes; the most is %d (64 KiB)", len(v), MaxSecretSize)
		}
	}
}

func fnboxReads(name string) bool {
	return slices.ContainsFunc(fnboxEnv, func(e string) bool {
		if strings.HasSuffix(e, "_") {
			return strings.HasPrefix(name, e)
		}
		return name == e
	})
}

func hasKey(m map[string]string, k string) bool {
	_, ok := m[k]
	return ok
}

// ErrSealed is wrapped by SealSecrets when the rewritten descriptor
// does not read back as the one given with its secrets replaced, which
// would be a bug: nothing must be stored then.
var ErrSealed = errors.New("secretEnv values could not be replaced in the descriptor")

// SealSecrets returns src with every secretEnv value replaced by what
// seal returns for it, and the descriptor parsed from the result. seal gets
// the variable name and the value as written (plain text, or an already
// sealed value) and returns the value to store: printable ASCII without
// quotes or backslashes, such as an encrypted value starting SealedPrefix.
// An error from seal (a sealed value that does not open) is returned as
// a Problem at the value.
//
// The rest of the text is kept as written, so problems found later still
// point at the user's lines: each value is replaced where it stands, on
// its own line, blank lines standing in for the lines of a multi-line
// value. A value whose extent cannot be found in the text (a block or
// multi-line plain scalar) makes the whole descriptor be written out again
// as YAML instead. Either way the result is parsed again and must equal
// the descriptor given with only its secrets changed.
//
// A descriptor without secretEnv is returned unchanged. An invalid one
// gets Parse's Problems.
func SealSecrets(filename string, src []byte, seal func(name, value string) (string, error)) ([]byte, *Descriptor, error) {
	desc, d, root, err := parse(filename, src)
	if err != nil {
		return nil, nil, err
	}
	if len(desc.SecretEnv) == 0 {
		return src, desc, nil
	}
	sealed := make(map[string]string, len(desc.SecretEnv))
	for _, k := range slices.Sorted(maps.Keys(desc.SecretEnv)) {
		s, err := seal(k, desc.SecretEnv[k])
		if err != nil {
			at := d.at(d.secrets[k])
			return nil, nil, Problems{{File: filename, Line: at.line, Column: at.col, Field: key("secretEnv", k), Message: err.Error()}}
		}
		if !plainASCII(s) {
			return nil, nil, fmt.Errorf("seal secretEnv.%s: the sealed value is not printable ASCII without quotes: %w", k, ErrSealed)
		}
		sealed[k] = s
	}
	want := *desc
	want.SecretEnv = sealed
	wantJSON, err := json.Marshal(&want)
	if err != nil {
		return nil, nil, fmt.Errorf("encode descriptor: %w", err)
	}
	check := func(out []byte) (*Descriptor, bool) {
		got, err := Parse(filename, out)
		if err != nil {
			return nil, false
		}
		b, err := json.Marshal(got)
		return got, err == nil && bytes.Equal(b, wantJSON)
	}
	if out, ok := replaceInText(src, d, sealed); ok {
		if got, ok := check(out); ok {
			return out, got, nil
		}
	}
	// Written out again: the nodes are the parsed tree's, changed in place.
	for k, n := range d.secrets {
		n.Value, n.Tag, n.Style = sealed[k], "!!str", yaml.DoubleQuotedStyle
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(root); err != nil {
		return nil, nil, fmt.Errorf("write descriptor with sealed secrets: %w", errors.Join(err, ErrSealed))
	}
	if err := enc.Close(); err != nil {
		return nil, nil, fmt.Errorf("write descriptor with sealed secrets: %w", errors.Join(err, ErrSealed))
	}
	if size := buf.Len(); size > MaxSize {
		return nil, nil, Problems{{File: filename, Field: "secretEnv",
			Message: fmt.Sprintf("with its secrets encrypted the descriptor is %d bytes; the most accepted is %d: make the secrets or the descriptor smaller", size, MaxSize)}}
	}
	got, ok := check(buf.Bytes())
	if !ok {
		return nil, nil, fmt.Errorf("write descriptor with sealed secrets: it does not read back the same: %w", ErrSealed)
	}
	return buf.Bytes(), got, nil
}

func plainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7E || c == '"' || c == '\\' || c == '\'' {
			return false
		}
	}
	return true
}

// replaceInText replaces each secret's value in src where it is written,
// as a double-quoted string followed by one line break for each line
// break the old value spanned. It reports false when a value's extent
// cannot be found (the caller then writes the tree out instead). Its cost
// is linear in the size of src, however many secrets there are.
func replaceInText(src []byte, d *decoder, sealed map[string]string) ([]byte, bool) {
	if !utf8.Valid(src) || bytes.HasPrefix(src, []byte("\xef\xbb\xbf")) {
		return nil, false
	}
	type value struct {
		at   mark
		node *yaml.Node
		with string
	}
	values := make([]value, 0, len(d.secrets))
	for k, n := range d.secrets {
		values = append(values, value{d.at(n), n, sealed[k]})
	}
	slices.SortFunc(values, func(a, b value) int {
		if a.at.line != b.at.line {
			return a.at.line - b.at.line
		}
		return a.at.col - b.at.col
	})
	var out bytes.Buffer
	out.Grow(len(src))
	pos := cursor{line: 1, col: 1}
	copied := 0
	for _, v := range values {
		from, ok := pos.seek(src, v.at)
		if !ok || from < copied {
			return nil, false
		}
		to, ok := scalarEnd(src, from, v.node)
		if !ok {
			return nil, false
		}
		out.Write(src[copied:from])
		out.WriteString(`"` + v.with + `"` + strings.Repeat("\n", lineBreaks(src[from:to])))
		copied = to
	}
	out.Write(src[copied:])
	return out.Bytes(), true
}

// cursor walks src forward, tracking the 1-based line and character
// column of byte offset i as yaml.v3 counts them.
type cursor struct {
	i, line, col int
}

// seek moves forward to line and column at and returns its offset; false
// if it is not in src or behind.
func (p *cursor) seek(src []byte, at mark) (int, bool) {
	for {
		if p.line == at.line && p.col == at.col {
			return p.i, true
		}
		if p.i >= len(src) || p.line > at.line || (p.line == at.line && p.col > at.col) {
			return 0, false
		}
		r, size := utf8.DecodeRune(src[p.i:])
		p.i += size
		switch {
		case r == '\r' && p.i < len(src) && src[p.i] == '\n':
			p.i++
			p.line, p.col = p.line+1, 1
		case isLineBreak(r):
			p.line, p.col = p.line+1, 1
		default:
			p.col++
		}
	}
}

// lineBreaks counts the line breaks in b, "\r\n" being one.
func lineBreaks(b []byte) int {
	s := strings.ReplaceAll(string(b), "\r\n", "\n")
	return strings.Count(s, "\n") + strings.Count(s, "\r") +
		strings.Count(s, "\u0085") + strings.Count(s, "\u2028") + strings.Count(s, "\u2029")
}

// scalarEnd returns the end of the scalar n starting at src[from]: after
// the closing quote of a quoted one, after the value of a plain one on one
// line. Other forms report false.
func scalarEnd(src []byte, from int, n *yaml.Node) (int, bool) {
	switch n.Style {
	case yaml.DoubleQuotedStyle:
		if src[from] != '"' {
			return 0, false
		}
		for i := from + 1; i < len(src); i++ {
			switch src[i] {
			case '\\':
				i++
			case '"':
				return i + 1, true
			}
		}
	case yaml.SingleQuotedStyle:
		if src[from] != '\'' {
			return 0, false
		}
		for i := from + 1; i < len(src); i++ {
			if src[i] == '\'' {
				if i+1 < len(src) && src[i+1] == '\'' {
					i++
					continue
				}
				return i + 1, true
			}
		}
	case 0:
		// A plain scalar on one line is its value as written (a tag
		// before it fails the prefix test, and is written out instead).
		if bytes.HasPrefix(src[from:], []byte(n.Value)) && !strings.ContainsAny(n.Value, "\r\n\u0085\u2028\u2029") {
			return from + len(n.Value), true
		}
	}
	return 0, false
}
