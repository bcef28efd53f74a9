package exec

import (
	"errors"
	"strings"
)

// Split splits a command line into words like a POSIX shell would, without
// running one: words are separated by blanks; single quotes keep
// everything literally, double quotes keep everything but \" \\ \$ \`
// escapes, and a backslash outside quotes escapes the next character. No
// expansion of any kind ($VAR, globs, ~) happens: the descriptor's fn must
// mean the same on every machine.
func Split(s string) ([]string, error) {
	var (
		words []string
		cur   strings.Builder
		in    bool // inside a word
		quote rune // 0, '\'' or '"'
	)
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		c := rs[i]
		switch {
		case quote == '\'':
			if c == '\'' {
				quote = 0
			} else {
				cur.WriteRune(c)
			}
		case quote == '"':
			switch {
			case c == '"':
				quote = 0
			case c == '\\' && i+1 < len(rs) && strings.ContainsRune("\"\\$`", rs[i+1]):
				i++
				cur.WriteRune(rs[i])
			default:
				cur.WriteRune(c)
			}
		case c == '\'' || c == '"':
			quote, in = c, true
		case c == '\\':
			if i+1 == len(rs) {
				return nil, errors.New("command line ends with a lone backslash")
			}
			i++
			cur.WriteRune(rs[i])
			in = true
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteRune(c)
			in = true
		}
	}
	if quote != 0 {
		return nil, errors.New("command line has an unterminated " + string(quote) + " quote")
	}
	if in {
		words = append(words, cur.String())
	}
	return words, nil
}
