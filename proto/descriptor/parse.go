package descriptor

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// MaxSize is the largest descriptor Parse reads. Real descriptors are a
// few kilobytes; the bound keeps a hostile upload from costing the
// deployer more than a moment.
const MaxSize = 1 << 20

// Parse reads a descriptor from data, in YAML or JSON. filename only
// labels problems. If the descriptor is invalid the error is Problems,
// listing every problem found; otherwise the Descriptor has its defaults
// filled in.
func Parse(filename string, data []byte) (*Descriptor, error) {
	desc, _, _, err := parse(filename, data)
	return desc, err
}

// parse is Parse, also returning the decoder and the root node, which
// SealSecrets needs to find the secret values in the text.
func parse(filename string, data []byte) (*Descriptor, *decoder, *yaml.Node, error) {
	root, columns, probs := parseYAML(filename, data)
	if probs != nil {
		return nil, nil, nil, probs
	}
	d := newDecoder(filename, columns)
	desc := d.descriptor(root)
	if !d.exhausted {
		validate(desc, d)
	}
	if len(d.probs) > 0 {
		d.probs.sort()
		return nil, nil, nil, d.probs
	}
	applyDefaults(desc, func(i int) bool {
		_, ok := d.pos[index("functions", i)+".delivery.retries"]
		return ok
	})
	bridgeDefaults(desc, func(i int) bool {
		_, ok := d.pos[index("bridges", i)+".sink.http.retries"]
		return ok
	})
	return desc, d, root, nil
}

// ParseFile reads and parses the descriptor at path; problems name path.
func ParseFile(path string) (*Descriptor, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read descriptor: %w", err)
	}
	return Parse(path, data)
}

// parseYAML parses data into the node tree of its single document.
func parseYAML(file string, data []byte) (*yaml.Node, columnFix, Problems) {
	fail := func(line, col int, format string, args ...any) Problems {
		return Problems{{File: file, Line: line, Column: col, Message: fmt.Sprintf(format, args...)}}
	}
	if len(data) > MaxSize {
		return nil, nil, fail(0, 0, "the descriptor is %d bytes; the most accepted is %d", len(data), MaxSize)
	}
	text, columns := jsonCompat(data)
	dec := yaml.NewDecoder(bytes.NewReader(text))
	var doc yaml.Node
	err := decode(dec, &doc)
	if errors.Is(err, io.EOF) {
		return nil, nil, fail(0, 0, "the descriptor is empty: it needs name, platform and functions")
	}
	if err != nil {
		return nil, nil, syntaxProblem(file, data, err)
	}
	// A stray "---" at the end is harmless; a second document is not.
	for {
		var extra yaml.Node
		err := decode(dec, &extra)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, syntaxProblem(file, data, err)
		}
		if len(extra.Content) == 1 && isNull(extra.Content[0]) && extra.Content[0].Value == "" {
			continue
		}
		return nil, nil, fail(extra.Line, extra.Column, "a descriptor is one YAML document; remove this second one (after ---) or put it in its own file")
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, nil, fail(doc.Line, doc.Column, "the descriptor is empty: it needs name, platform and functions")
	}
	return doc.Content[0], columns, nil
}

// decode runs the YAML parser, turning a panic inside it into an error:
// a service that parses uploads must survive whatever a user uploads.
func decode(dec *yaml.Decoder, n *yaml.Node) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("yaml: %v", r)
		}
	}()
	return dec.Decode(n)
}

var syntaxLine = regexp.MustCompile(`^yaml: line (\d+): `)

// syntaxProblem turns a YAML parser error into a problem with its line.
// yaml.v3 leaves the line out when it is the first (it counts from 0 and
// prints only non-zero lines) and for characters YAML does not allow;
// those are found here.
func syntaxProblem(file string, data []byte, err error) Problems {
	msg := err.Error()
	line, col := 0, 0
	if m := syntaxLine.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
		if strings.Contains(msg, "UTF-8") || strings.Contains(msg, "control characters") || msg == "invalid Unicode character" {
			line, col = badCharAt(data)
		}
		if line == 0 {
			line = 1
		}
	}
	return Problems{{File: file, Line: line, Column: col, Message: "invalid YAML: " + msg}}
}

// badCharAt finds the first character YAML does not allow (YAML 1.1
// §5.1) or byte that is not UTF-8, for the parser errors that come
// without a position. Lines and columns are 1-based, columns count
// characters as yaml.v3 does; 0, 0 means none was found.
func badCharAt(data []byte) (line, col int) {
	line, col = 1, 1
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && size <= 1 || !yamlPrintable(r) {
			return line, col
		}
		i += size
		if isLineBreak(r) && !(r == '\r' && i < len(data) && data[i] == '\n') {
			line, col = line+1, 1
		} else if !isLineBreak(r) {
			col++
		}
	}
	return 0, 0
}

// isLineBreak reports whether YAML 1.1 (so yaml.v3) breaks lines at r;
// "\r\n" is one break.
func isLineBreak(r rune) bool {
	return r == '\n' || r == '\r' || r == 0x85 || r == 0x2028 || r == 0x2029
}

func yamlPrintable(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D || (r >= 0x20 && r <= 0x7E) || r == 0x85 ||
		(r >= 0xA0 && r <= 0xD7FF) || (r >= 0xE000 && r <= 0xFFFD) || (r >= 0x10000 && r <= 0x10FFFF)
}
