package descriptor

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// maxVisits bounds the YAML values one descriptor may expand to. Aliases
// let a small file name the same value many times ("billion laughs"); a
// real descriptor is thousands of values, far below this.
const maxVisits = 1 << 18

// mark is a position in the file.
type mark struct{ line, col int }

// decoder walks a YAML node tree into a Descriptor, recording where each
// field is and every problem with the tree's shape. Rules about values
// that need no position of their own are checked afterwards (validate.go).
type decoder struct {
	file  string
	probs Problems
	// pos holds the position of every field present with a non-null value,
	// keyed by field path; a missing path means the field was left out.
	pos map[string]mark
	// broken holds the fields already reported, so the value rules stay
	// quiet about them and their children rather than pile on.
	broken map[string]bool
	// columns maps yaml.v3's columns back to the text as sent (jsonCompat).
	columns columnFix
	visits  int
	// exhausted is set once maxVisits is reached; decoding then stops.
	exhausted bool
	// secrets holds the value node of each secretEnv entry, for
	// SealSecrets to replace in place.
	secrets map[string]*yaml.Node
}

func newDecoder(file string, columns columnFix) *decoder {
	return &decoder{file: file, columns: columns, pos: map[string]mark{}, broken: map[string]bool{}}
}

// fail records a problem with the value of path, at node n, and marks
// path as reported.
func (d *decoder) fail(n *yaml.Node, path, format string, args ...any) {
	d.note(n, path, format, args...)
	d.broken[path] = true
}

// note records a problem at node n without marking path: for problems
// beside a mapping's values (a bad key, a bad merge), which must not
// silence the rules about the values.
func (d *decoder) note(n *yaml.Node, path, format string, args ...any) {
	at := d.at(n)
	d.probs = append(d.probs, Problem{File: d.file, Line: at.line, Column: at.col, Field: path, Message: fmt.Sprintf(format, args...)})
}

// at returns where n is in the text the user sent.
func (d *decoder) at(n *yaml.Node) mark {
	return mark{n.Line, d.columns.column(n.Line, n.Column)}
}

// resolve follows aliases to the value they name and counts the visit.
// It returns nil once the visit budget is spent.
func (d *decoder) resolve(n *yaml.Node) *yaml.Node {
	if d.exhausted {
		return nil
	}
	d.visits++
	if d.visits > maxVisits {
		d.exhausted = true
		d.probs = append(d.probs, Problem{File: d.file, Message: fmt.Sprintf("the descriptor expands to more than %d values through aliases", maxVisits)})
		return nil
	}
	// An anchor cannot be put on an alias, so one step is enough; the
	// loop only guards against hand-built trees.
	for i := 0; n.Kind == yaml.AliasNode && i < 8; i++ {
		if n.Alias == nil {
			return nil
		}
		n = n.Alias
	}
	if n.Kind == yaml.AliasNode {
		return nil
	}
	return n
}

// isNull reports whether n is an explicit or implicit YAML null, which
// descriptors treat as leaving the field out.
func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe names the YAML type of n for "expected X, got Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!str":
			return "a string"
		case "!!int":
			return "an integer"
		case "!!float":
			return "a number"
		case "!!bool":
			return "a boolean"
		case "!!null":
			return "null"
		case "!!timestamp":
			return "a time"
		}
		return "a value tagged " + n.ShortTag()
	}
	return "nothing"
}

// expected reports a value of the wrong YAML type.
func (d *decoder) expected(n *yaml.Node, path, want string) {
	d.fail(n, path, "expected %s, got %s", want, describe(n))
}

// join appends a field name to a path.
func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// index appends a list index to a path.
func index(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// key appends a user-chosen map key to a path: env.LOG_LEVEL, but
// offset["0"] where the key is not an identifier.
func key(path, k string) string {
	if identifier.MatchString(k) {
		return join(path, k)
	}
	return path + "[" + strconv.Quote(k) + "]"
}

// pair is one key and value of a mapping.
type pair struct{ key, val *yaml.Node }

// pairs returns the entries of mapping n with YAML merge keys (<<: *base)
// applied: the mapping's own keys first, then merged keys it does not
// set, earlier merges winning. Duplicate and non-scalar keys are reported.
func (d *decoder) pairs(path string, n *yaml.Node) []pair {
	var out []pair
	seen := map[string]*yaml.Node{}
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := d.resolve(n.Content[i])
		if k == nil {
			return out
		}
		v := n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.note(k, path, "field names must be strings, got %s", describe(k))
			continue
		}
		if k.Value == "<<" && k.ShortTag() == "!!merge" {
			merges = append(merges, v)
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.note(k, join(path, k.Value), "set twice (first on line %d)", first.Line)
			continue
		}
		seen[k.Value] = k
		out = append(out, pair{k, v})
	}
	for _, m := range merges {
		for _, p := range d.merged(path, m, 0) {
			if _, dup := seen[p.key.Value]; !dup {
				seen[p.key.Value] = p.key
				out = append(out, p)
			}
		}
	}
	return out
}

// maxMergeDepth bounds merges of merges; it also ends a mapping that
// merges itself.
const maxMergeDepth = 8

// merged returns the entries a merge key's value contributes.
func (d *decoder) merged(path string, v *yaml.Node, depth int) []pair {
	r := d.resolve(v)
	if r == nil {
		return nil
	}
	if depth >= maxMergeDepth {
		d.note(v, path, "merges (<<) nest too deep")
		return nil
	}
	switch r.Kind {
	case yaml.MappingNode:
		var out []pair
		seen := map[string]bool{}
		var merges []*yaml.Node
		for i := 0; i+1 < len(r.Content); i += 2 {
			k := d.resolve(r.Content[i])
			if k == nil {
				return out
			}
			if k.Kind != yaml.ScalarNode {
				continue // reported where the mapping itself is decoded, if ever
			}
			if k.Value == "<<" && k.ShortTag() == "!!merge" {
				merges = append(merges, r.Content[i+1])
				continue
			}
			if !seen[k.Value] {
				seen[k.Value] = true
				out = append(out, pair{k, r.Content[i+1]})
			}
		}
		for _, m := range merges {
			for _, p := range d.merged(path, m, depth+1) {
				if !seen[p.key.Value] {
					seen[p.key.Value] = true
					out = append(out, p)
				}
			}
		}
		return out
	case yaml.SequenceNode:
		if depth > 0 {
			break
		}
		var out []pair
		seen := map[string]bool{}
		for _, item := range r.Content {
			for _, p := range d.merged(path, item, depth+1) {
				if !seen[p.key.Value] {
					seen[p.key.Value] = true
					out = append(out, p)
				}
			}
		}
		return out
	}
	d.note(v, path, "<< merges a mapping or a list of mappings, got %s", describe(r))
	return nil
}

// field is one known field of a mapping and how to decode its value.
// decode gets the field's path and its value, aliases resolved and never
// null: a null value counts as leaving the field out.
type field struct {
	name   string
	decode func(path string, v *yaml.Node)
}

// object decodes mapping n field by field, reporting unknown fields. It
// reports false when n is not a mapping.
func (d *decoder) object(path string, n *yaml.Node, fields []field) bool {
	return d.objectExt(path, n, fields, false)
}

// objectExt is object, optionally ignoring fields starting "x-": the top
// level allows them, as Docker Compose does, as a place for anchors that
// functions share.
func (d *decoder) objectExt(path string, n *yaml.Node, fields []field, extensions bool) bool {
	if n.Kind != yaml.MappingNode {
		d.expected(n, path, "a mapping")
		return false
	}
	for _, p := range d.pairs(path, n) {
		name := p.key.Value
		i := slices.IndexFunc(fields, func(f field) bool { return f.name == name })
		if i < 0 {
			if extensions && strings.HasPrefix(name, "x-") {
				continue
			}
			d.fail(p.key, join(path, name), "unknown field%s", suggest(name, fields))
			continue
		}
		v := d.resolve(p.val)
		if v == nil {
			return true
		}
		if isNull(v) {
			continue
		}
		child := join(path, name)
		d.pos[child] = d.at(p.val)
		fields[i].decode(child, v)
	}
	return true
}

// suggest names the known field closest to a misspelt one, or lists them
// all when none is close.
func suggest(name string, fields []field) string {
	best, bestDist := "", math.MaxInt
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.name
		if dist := editDistance(strings.ToLower(name), strings.ToLower(f.name)); dist < bestDist {
			best, bestDist = f.name, dist
		}
	}
	if bestDist <= max(1, len(best)/2) {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	return "; the fields here are " + strings.Join(names, ", ")
}

// editDistance counts the edits between a and b, a swap of neighbours
// being one edit (optimal string alignment distance), as typos go. Long
// names are not compared: no field name is long.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return math.MaxInt
	}
	// d[i][j] is the distance between a[:i] and b[:j].
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// str decodes a string field. Any scalar is taken as the text written, so
// cpu: 0.5 and version: 2 need no quotes.
func (d *decoder) str(path string, n *yaml.Node) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.expected(n, path, "a string")
		return "", false
	}
	return n.Value, true
}

// maxInt bounds integer fields: every count in a descriptor is far
// smaller, and the bound keeps arithmetic on them from overflowing.
const maxInt = math.MaxInt32

// integer decodes a count written as a YAML integer.
func (d *decoder) integer(path string, n *yaml.Node) (int, bool) {
	v, ok := d.integer64(path, n)
	if ok && (v > maxInt || v < -maxInt) {
		d.fail(n, path, "%s is out of range", n.Value)
		return 0, false
	}
	return int(v), ok
}

// integer64 decodes an int64 written as a YAML integer, such as an offset.
func (d *decoder) integer64(path string, n *yaml.Node) (int64, bool) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
		d.expected(n, path, "an integer")
		return 0, false
	}
	var v int64
	if err := n.Decode(&v); err != nil {
		if _, err := strconv.ParseFloat(n.Value, 64); err == nil {
			d.fail(n, path, "%s is out of range", n.Value)
		} else {
			d.fail(n, path, "expected an integer, got %q", n.Value)
		}
		return 0, false
	}
	return v, true
}

// boolean decodes a true/false field.
func (d *decoder) boolean(path string, n *yaml.Node) (bool, bool) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
		d.expected(n, path, "true or false")
		return false, false
	}
	var v bool
	if err := n.Decode(&v); err != nil {
		d.expected(n, path, "true or false")
		return false, false
	}
	return v, true
}

// duration decodes a duration field; durations are never negative.
func (d *decoder) duration(path string, n *yaml.Node) (Duration, bool) {
	if n.Kind != yaml.ScalarNode {
		d.expected(n, path, "a duration")
		return 0, false
	}
	v, err := parseDuration(n.Value)
	if err != nil {
		d.fail(n, path, "%v", err)
		return 0, false
	}
	if v < 0 {
		d.fail(n, path, "%s is negative", n.Value)
		return 0, false
	}
	return v, true
}

// strList decodes a list of strings.
func (d *decoder) strList(path string, n *yaml.Node) ([]string, bool) {
	if n.Kind != yaml.SequenceNode {
		d.expected(n, path, "a list")
		return nil, false
	}
	out := make([]string, 0, len(n.Content))
	for i, item := range n.Content {
		p := index(path, i)
		v := d.resolve(item)
		if v == nil {
			return out, false
		}
		d.pos[p] = d.at(item)
		if isNull(v) {
			d.expected(item, p, "a string")
			out = append(out, "") // keep indexes aligned with the file
			continue
		}
		s, _ := d.str(p, v)
		out = append(out, s)
	}
	return out, true
}

// strMap decodes a mapping of user-chosen keys to strings.
func (d *decoder) strMap(path string, n *yaml.Node) (map[string]string, bool) {
	if n.Kind != yaml.MappingNode {
		d.expected(n, path, "a mapping")
		return nil, false
	}
	out := map[string]string{}
	for _, p := range d.pairs(path, n) {
		kp := key(path, p.key.Value)
		v := d.resolve(p.val)
		if v == nil {
			return out, false
		}
		d.pos[kp] = d.at(p.key)
		if isNull(v) {
			out[p.key.Value] = ""
			continue
		}
		if s, ok := d.str(kp, v); ok {
			out[p.key.Value] = s
		}
	}
	return out, true
}

// list decodes a sequence with one entry per item, bad ones left zero so
// indexes match the file: item decodes each resolved item (its path, its
// node, the node as written for positions, its entry). An alias that
// cannot be resolved ends the list there.
func list[T any](d *decoder, path string, n *yaml.Node, item func(p string, v, at *yaml.Node, e *T)) []T {
	if n.Kind != yaml.SequenceNode {
		d.expected(n, path, "a list")
		return nil
	}
	out := make([]T, len(n.Content))
	for i, it := range n.Content {
		p := index(path, i)
		v := d.resolve(it)
		if v == nil {
			return out
		}
		d.pos[p] = d.at(it)
		item(p, v, it, &out[i])
	}
	return out
}
