package descriptor

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// JSON is meant to be a subset of YAML, but yaml.v3 (a YAML 1.1 parser
// at heart) refuses some valid JSON strings: the escape "\/", which PHP
// and others write for every slash; surrogate pairs ("\ud83d\ude00"),
// which Python's json.dumps writes for every emoji; and raw characters
// YAML does not allow in a file, such as U+0080 or DEL, which
// encoding/json writes unescaped (so even our own stored form would not
// read back). jsonCompat rewrites those, in valid JSON only, into forms
// yaml.v3 reads as encoding/json would, so the deployer API takes any
// JSON a client produces.
//
// Rewrites change the length of a line, so jsonCompat also returns where
// they are: columnFix maps yaml.v3's columns back onto the text the user
// sent, and problems still point at the right place.
func jsonCompat(data []byte) ([]byte, columnFix) {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 || (trimmed[0] != '{' && trimmed[0] != '[') ||
		(!bytes.Contains(data, []byte(`\`)) && printable(data)) || !json.Valid(data) {
		return data, nil
	}
	w := compatWriter{out: make([]byte, 0, len(data)), line: 1, col: 1, fix: columnFix{}}
	inString := false
	for i := 0; i < len(data); {
		c := data[i]
		switch {
		case !inString:
			inString = c == '"'
			if c == '\r' && i+1 < len(data) && data[i+1] == '\n' {
				w.out = append(w.out, c) // one line break with the '\n'
				i++
				continue
			}
			w.write(data[i:i+1], 1)
			i++
		case c == '"':
			inString = false
			w.write(data[i:i+1], 1)
			i++
		case c == '\\':
			i += w.escape(data[i:])
		default:
			// json.Valid guarantees UTF-8 here.
			r, size := utf8.DecodeRune(data[i:])
			if yamlPrintable(r) {
				w.write(data[i:i+size], 1)
			} else {
				w.write(fmt.Appendf(nil, `\u%04X`, r), 1)
			}
			i += size
		}
	}
	return w.out, w.fix
}

// compatWriter writes the rewritten text, tracking line and column the
// way yaml.v3 counts them (characters, from 1).
type compatWriter struct {
	out       []byte
	line, col int
	fix       columnFix
}

// write appends b, which stands for orig characters of the original.
func (w *compatWriter) write(b []byte, orig int) {
	w.out = append(w.out, b...)
	if len(b) == 1 && (b[0] == '\n' || b[0] == '\r') {
		w.line, w.col = w.line+1, 1
		return
	}
	w.col += utf8.RuneCount(b)
	if n := utf8.RuneCount(b); n != orig {
		w.fix[w.line] = append(w.fix[w.line], columnShift{from: w.col, by: orig - n})
	}
}

// escape rewrites the escape sequence at the start of s and returns its
// length; json.Valid guarantees it is complete.
func (w *compatWriter) escape(s []byte) int {
	switch s[1] {
	case '/':
		w.write([]byte("/"), 2)
		return 2
	case 'u':
		r := hex4(s[2:6])
		switch {
		case isHighSurrogate(r) && len(s) >= 12 && s[6] == '\\' && s[7] == 'u' && isLowSurrogate(hex4(s[8:12])):
			pair := 0x10000 + (r-0xD800)<<10 + (hex4(s[8:12]) - 0xDC00)
			w.write(fmt.Appendf(nil, `\U%08X`, pair), 12)
			return 12
		case isHighSurrogate(r) || isLowSurrogate(r):
			// A lone surrogate is no character; encoding/json reads it
			// as U+FFFD, and so do we.
			w.write([]byte(`\uFFFD`), 6)
		default:
			w.write(s[:6], 6)
		}
		return 6
	}
	w.write(s[:2], 2)
	return 2
}

func hex4(b []byte) rune {
	v, _ := strconv.ParseUint(string(b), 16, 32)
	return rune(v)
}

func isHighSurrogate(r rune) bool { return r >= 0xD800 && r < 0xDC00 }
func isLowSurrogate(r rune) bool  { return r >= 0xDC00 && r < 0xE000 }

// printable reports whether every character of data may appear in YAML.
func printable(data []byte) bool {
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		if !yamlPrintable(r) {
			return false
		}
		i += size
	}
	return true
}

// columnShift says that from column from of the rewritten line on, the
// original column is by more.
type columnShift struct{ from, by int }

// columnFix maps columns in rewritten text back to the original, per line.
// A nil columnFix maps every column to itself.
type columnFix map[int][]columnShift

// column returns the original column of line, col in the rewritten text.
func (f columnFix) column(line, col int) int {
	orig := col
	for _, s := range f[line] {
		if col >= s.from {
			orig += s.by
		}
	}
	return orig
}
