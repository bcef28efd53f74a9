package descriptor

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// Problem is one thing wrong with a descriptor. It names the file, the
// position and the field so a user can go straight to the mistake: a
// deployer that answered only "invalid descriptor" would send them
// hunting through YAML by hand.
type Problem struct {
	// File is the name given to Parse (or the path given to ParseFile).
	File string
	// Line and Column are 1-based; 0 means the position is unknown (an
	// error the YAML parser reported without one).
	Line, Column int
	// Field is the path of the offending field, like
	// functions[0].bindings.streams[1].offset, or "" for the whole file.
	Field string
	// Message says what is wrong and, where it can, what would be right.
	Message string
}

// String formats the problem the way compilers do, so editors and CI logs
// can link to it: "butter.yaml:14:9 functions[0].delivery.retries: must not
// be negative". Unknown parts of the position are left out.
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		if b.Len() > 0 {
			b.WriteByte(':')
		}
		b.WriteString(strconv.Itoa(p.Line))
		if p.Column > 0 {
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(p.Column))
		}
	}
	if p.Field != "" {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(p.Field)
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// Problems is every problem found in one descriptor. Parse returns it as
// its error so that a bad descriptor is rejected whole with all of its
// mistakes listed at once (DESIGN §4), not one per attempt. Use errors.As
// to get at the list.
type Problems []Problem

var _ error = Problems(nil)

// Error lists the problems one per line in file order.
func (ps Problems) Error() string {
	sorted := slices.Clone(ps)
	sorted.sort()
	lines := make([]string, len(sorted))
	for i, p := range sorted {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// sort orders problems by position. Problems without a position (Line 0)
// go last: they are about the file as a whole, and the positioned ones are
// the ones an editor can jump to.
func (ps Problems) sort() {
	slices.SortStableFunc(ps, func(a, b Problem) int {
		if (a.Line == 0) != (b.Line == 0) {
			if a.Line == 0 {
				return 1
			}
			return -1
		}
		return cmp.Or(
			cmp.Compare(a.Line, b.Line),
			cmp.Compare(a.Column, b.Column),
			cmp.Compare(a.Field, b.Field),
			cmp.Compare(a.Message, b.Message),
		)
	})
}
