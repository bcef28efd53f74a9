package gobuild

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path"

	"go.yaml.in/yaml/v3"

	"github.com/buttercompass/butter/proto/descriptor"
)

// fnNode is one entry of functions: in the descriptor's YAML tree.
type fnNode struct {
	entry *yaml.Node // the function's mapping
	fn    *yaml.Node // its fn value; Line and Column place problems
}

// noPosition stands in for the fn nodes of a descriptor yaml.v3 cannot
// read as it is (some valid JSON; see descriptor.Parse): its problems have
// no line.
var noPosition = &yaml.Node{}

// functionNodes parses the descriptor source into its YAML tree and finds
// every function's entry and fn in it. The tree is nil for JSON yaml.v3
// refuses.
func functionNodes(src []byte) (*yaml.Node, []fnNode, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		nodes, err := jsonFunctionNodes(src, err)
		return nil, nodes, err
	}
	if len(doc.Content) == 0 {
		return nil, nil, errors.New("empty descriptor")
	}
	fns := mapValue(deref(doc.Content[0]), "functions")
	if fns == nil || fns.Kind != yaml.SequenceNode {
		return nil, nil, errors.New("no functions sequence")
	}
	var out []fnNode
	for _, item := range fns.Content {
		entry := deref(item)
		fn := mapValue(entry, "fn")
		if entry.Kind != yaml.MappingNode || fn == nil {
			return nil, nil, fmt.Errorf("line %d: function without fn", item.Line)
		}
		out = append(out, fnNode{entry: entry, fn: fn})
	}
	return &doc, out, nil
}

// jsonFunctionNodes is functionNodes for JSON yaml.v3 refuses.
func jsonFunctionNodes(src []byte, yamlErr error) ([]fnNode, error) {
	var d struct{ Functions []json.RawMessage }
	if err := json.Unmarshal(src, &d); err != nil {
		return nil, yamlErr
	}
	out := make([]fnNode, len(d.Functions))
	for i := range out {
		out[i] = fnNode{fn: noPosition}
	}
	return out, nil
}

func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// mapValue returns the value of key in mapping m, or nil.
func mapValue(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return deref(m.Content[i+1])
		}
	}
	return nil
}

// binaryFn is the fn fnbox runs for a built function: its binary, a path
// relative to the code directory (with a slash, so not looked up on PATH).
func binaryFn(name string) string { return "./" + path.Join(BinDir, name) }

// runDescriptor rewrites the descriptor tree doc so each fn names its
// binary and each function its name, which was derived from the old fn
// when left out, and encodes it. A nil doc is a JSON descriptor yaml.v3
// cannot read (see noPosition).
func runDescriptor(src []byte, doc *yaml.Node, nodes []fnNode, desc *descriptor.Descriptor) ([]byte, error) {
	if doc == nil {
		return runDescriptorJSON(src, desc)
	}
	for i, n := range nodes {
		f := desc.Functions[i]
		n.fn.Kind, n.fn.Tag, n.fn.Style, n.fn.Value = yaml.ScalarNode, "!!str", yaml.DoubleQuotedStyle, binaryFn(f.Name)
		if name := mapValue(n.entry, "name"); name != nil {
			name.Kind, name.Tag, name.Value = yaml.ScalarNode, "!!str", f.Name
			continue
		}
		n.entry.Content = append(n.entry.Content,
			&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "name"},
			&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Style: yaml.DoubleQuotedStyle, Value: f.Name})
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// runDescriptorJSON is runDescriptor for a JSON descriptor yaml.v3 cannot
// read: it is rewritten as JSON, keeping every other member as sent.
func runDescriptorJSON(src []byte, desc *descriptor.Descriptor) ([]byte, error) {
	var d map[string]json.RawMessage
	if err := json.Unmarshal(src, &d); err != nil {
		return nil, err
	}
	var fns []map[string]json.RawMessage
	if err := json.Unmarshal(d["functions"], &fns); err != nil {
		return nil, err
	}
	for i, f := range fns {
		f["fn"], _ = json.Marshal(binaryFn(desc.Functions[i].Name))
		f["name"], _ = json.Marshal(desc.Functions[i].Name)
	}
	var err error
	if d["functions"], err = json.Marshal(fns); err != nil {
		return nil, err
	}
	return json.Marshal(d)
}

// ErrNoCode is the *Error for a go deployment uploaded as a descriptor
// alone: there is nothing to build. Its problem points at platform.
func ErrNoCode(descFile string, src []byte) *Error {
	p := descriptor.Problem{File: descFile, Field: "platform",
		Message: "go functions are built from their code: deploy the code directory (butter deploy DIR) with its go.mod and Go files, not the descriptor alone"}
	var doc yaml.Node
	if yaml.Unmarshal(src, &doc) == nil && len(doc.Content) > 0 {
		if n := mapValue(deref(doc.Content[0]), "platform"); n != nil {
			p.Line, p.Column = n.Line, n.Column
		}
	}
	return &Error{Summary: "a go deployment needs its code", Problems: []string{p.String()}}
}
