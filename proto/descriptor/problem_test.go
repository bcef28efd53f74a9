package descriptor

import (
	"errors"
	"fmt"
	"testing"
)

func TestProblemString(t *testing.T) {
	for _, tc := range []struct {
		p    Problem
		want string
	}{
		{Problem{"butter.yaml", 14, 9, "functions[0].bindings.streams[1].offset", `"frist" is not first`}, `butter.yaml:14:9 functions[0].bindings.streams[1].offset: "frist" is not first`},
		{Problem{"butter.yaml", 3, 0, "", "invalid YAML: x"}, "butter.yaml:3: invalid YAML: x"},
		{Problem{"butter.yaml", 0, 0, "", "the descriptor is empty"}, "butter.yaml: the descriptor is empty"},
		{Problem{"", 2, 5, "name", "required"}, "2:5 name: required"},
		{Problem{"", 0, 0, "name", "required"}, "name: required"},
		{Problem{"", 0, 0, "", "bad"}, "bad"},
	} {
		if got := tc.p.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}
}

func TestProblemsError(t *testing.T) {
	ps := Problems{
		{File: "f", Message: "whole file"},
		{File: "f", Line: 9, Column: 1, Field: "b", Message: "second"},
		{File: "f", Line: 2, Column: 7, Field: "a", Message: "first"},
		{File: "f", Line: 9, Column: 1, Field: "a", Message: "same place"},
	}
	want := "f:2:7 a: first\nf:9:1 a: same place\nf:9:1 b: second\nf: whole file"
	if got := ps.Error(); got != want {
		t.Errorf("Error() =\n%s\nwant\n%s", got, want)
	}
	if ps[0].Message != "whole file" {
		t.Errorf("Error() reordered the receiver")
	}
	var err error = fmt.Errorf("deploy: %w", ps)
	var got Problems
	if !errors.As(err, &got) || len(got) != 4 {
		t.Errorf("errors.As through a wrap = %v", got)
	}
}
