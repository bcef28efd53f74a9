package descriptor

import (
	"encoding/json"
	"fmt"
	"math"

	"go.yaml.in/yaml/v3"
)

// RawYAML is a section of the descriptor kept as written, for the part of
// the platform that owns its schema. Node keeps file positions, so that
// part's problems can name line and column too.
type RawYAML struct {
	// Node is the section's value, aliases unresolved.
	Node *yaml.Node
}

// Decode decodes the section into v with yaml.v3's rules.
func (r *RawYAML) Decode(v any) error {
	if err := r.Node.Decode(v); err != nil {
		return fmt.Errorf("decode section: %w", err)
	}
	return nil
}

// MarshalJSON writes the section as JSON so a stored descriptor keeps it.
// YAML that JSON cannot hold (keys that are not strings, an alias that
// contains itself) is an error, which Parse reports as a problem.
func (r *RawYAML) MarshalJSON() ([]byte, error) {
	var v any
	if err := r.Node.Decode(&v); err != nil {
		return nil, fmt.Errorf("cannot be read as plain data: %v", err)
	}
	v, err := jsonable(v)
	if err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

// UnmarshalJSON reads the section back from stored JSON.
func (r *RawYAML) UnmarshalJSON(b []byte) error {
	var n yaml.Node
	if err := yaml.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("decode section: %w", err)
	}
	if len(n.Content) == 1 {
		r.Node = n.Content[0]
	} else {
		r.Node = &n
	}
	return nil
}

// jsonable turns what yaml.v3 decodes into `any` into values
// encoding/json accepts: maps with string keys, and infinities and NaN as
// the strings YAML writes for them.
func jsonable(v any) (any, error) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			j, err := jsonable(e)
			if err != nil {
				return nil, err
			}
			v[k] = j
		}
		return v, nil
	case map[any]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			var ks string
			switch k := k.(type) {
			case string:
				ks = k
			case nil:
				ks = "null"
			case int, int64, uint64, float64, bool:
				ks = fmt.Sprint(k)
			default:
				return nil, fmt.Errorf("has a key that is not a string or number: %v", k)
			}
			if _, dup := out[ks]; dup {
				return nil, fmt.Errorf("has two keys that both read %q", ks)
			}
			j, err := jsonable(e)
			if err != nil {
				return nil, err
			}
			out[ks] = j
		}
		return out, nil
	case []any:
		for i, e := range v {
			j, err := jsonable(e)
			if err != nil {
				return nil, err
			}
			v[i] = j
		}
		return v, nil
	case float64:
		switch {
		case math.IsNaN(v):
			return ".nan", nil
		case math.IsInf(v, 1):
			return ".inf", nil
		case math.IsInf(v, -1):
			return "-.inf", nil
		}
	}
	return v, nil
}
