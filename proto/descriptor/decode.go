package descriptor

import (
	"go.yaml.in/yaml/v3"
)

// This file maps each section of the descriptor (DESIGN §4) onto its Go
// type. Shapes are checked here, with positions; rules about the values
// are in validate.go.

// descriptor decodes the document's root.
func (d *decoder) descriptor(root *yaml.Node) *Descriptor {
	desc := &Descriptor{}
	d.pos[""] = d.at(root)
	if isNull(root) && root.Value == "" {
		// yaml.v3 places an empty document after its last line; the
		// problem is the whole file's, so it gets no position.
		d.probs = append(d.probs, Problem{File: d.file, Message: "the descriptor is empty: it needs name, platform and functions"})
		d.broken[""] = true
		return desc
	}
	if root.Kind != yaml.MappingNode {
		d.fail(root, "", "a descriptor is a mapping with name, platform and functions; got %s", describe(root))
		return desc
	}
	d.objectExt("", root, []field{
		{"name", func(p string, v *yaml.Node) { desc.Name, _ = d.str(p, v) }},
		{"platform", func(p string, v *yaml.Node) { desc.Platform, _ = d.str(p, v) }},
		{"version", func(p string, v *yaml.Node) { desc.Version, _ = d.str(p, v) }},
		{"runtime", func(p string, v *yaml.Node) { desc.Runtime, _ = d.str(p, v) }},
		{"isolation", func(p string, v *yaml.Node) { desc.Isolation, _ = d.str(p, v) }},
		{"description", func(p string, v *yaml.Node) { desc.Description, _ = d.str(p, v) }},
		{"env", func(p string, v *yaml.Node) { desc.Env, _ = d.strMap(p, v) }},
		{"secretEnv", func(p string, v *yaml.Node) { desc.SecretEnv = d.secretMap(p, v) }},
		{"functions", func(p string, v *yaml.Node) { desc.Functions = d.functions(p, v) }},
		{"bridges", func(p string, v *yaml.Node) { desc.Bridges = d.bridges(p, v) }},
	}, true)
	return desc
}

// fixColumns moves the columns of a subtree that is handed on as YAML
// back onto the text as sent. Only rewritten JSON needs it (see
// jsonCompat), and JSON has no aliases, so the walk is a plain tree walk.
func (d *decoder) fixColumns(n *yaml.Node) {
	if d.columns == nil {
		return
	}
	n.Column = d.columns.column(n.Line, n.Column)
	for _, c := range n.Content {
		d.fixColumns(c)
	}
}

// functions decodes the functions list. The result has one entry per list
// item, bad ones left zero, so indexes match the file.
func (d *decoder) functions(path string, n *yaml.Node) []Function {
	return list(d, path, n, func(p string, v, item *yaml.Node, f *Function) {
		if isNull(v) {
			d.expected(item, p, "a mapping")
			return
		}
		d.function(p, v, f)
	})
}

func (d *decoder) function(path string, n *yaml.Node, f *Function) {
	d.object(path, n, []field{
		{"fn", func(p string, v *yaml.Node) { f.Fn, _ = d.str(p, v) }},
		{"name", func(p string, v *yaml.Node) { f.Name, _ = d.str(p, v) }},
		{"bindings", func(p string, v *yaml.Node) { d.bindings(p, v, &f.Bindings) }},
		{"delivery", func(p string, v *yaml.Node) { d.delivery(p, v, &f.Delivery) }},
		{"scale", func(p string, v *yaml.Node) { d.scale(p, v, &f.Scale) }},
		{"limits", func(p string, v *yaml.Node) {
			d.object(p, v, []field{
				{"memory", func(p string, v *yaml.Node) { f.Limits.Memory, _ = d.str(p, v) }},
				{"cpu", func(p string, v *yaml.Node) { f.Limits.CPU, _ = d.str(p, v) }},
			})
		}},
	})
}

func (d *decoder) bindings(path string, n *yaml.Node, b *Bindings) {
	d.object(path, n, []field{
		{"route", func(p string, v *yaml.Node) { b.Route = d.route(p, v) }},
		{"timer", func(p string, v *yaml.Node) { b.Timer = d.timer(p, v) }},
		{"streams", func(p string, v *yaml.Node) { b.Streams = d.streams(p, v) }},
		{"out", func(p string, v *yaml.Node) { b.Out, _ = d.str(p, v) }},
		{"emits", func(p string, v *yaml.Node) { b.Emits, _ = d.strList(p, v) }},
	})
}

// route decodes a route: a mapping, or a string holding just the context.
func (d *decoder) route(path string, n *yaml.Node) *Route {
	r := &Route{}
	if n.Kind == yaml.ScalarNode {
		d.pos[join(path, "context")] = d.pos[path]
		r.Context = n.Value
		return r
	}
	if n.Kind != yaml.MappingNode {
		d.expected(n, path, "a mapping or a context path")
		return nil
	}
	d.object(path, n, []field{
		{"context", func(p string, v *yaml.Node) { r.Context, _ = d.str(p, v) }},
		{"methods", func(p string, v *yaml.Node) { r.Methods, _ = d.strList(p, v) }},
		{"stream", func(p string, v *yaml.Node) { r.Stream, _ = d.str(p, v) }},
		{"timeout", func(p string, v *yaml.Node) { r.Timeout, _ = d.duration(p, v) }},
		{"maxBody", func(p string, v *yaml.Node) { r.MaxBody, _ = d.byteSize(p, v) }},
		{"auth", func(p string, v *yaml.Node) { r.Auth = d.auth(p, v) }},
		{"mode", func(p string, v *yaml.Node) { r.Mode, _ = d.str(p, v) }},
	})
	return r
}

func (d *decoder) auth(path string, n *yaml.Node) *RouteAuth {
	a := &RouteAuth{}
	d.object(path, n, []field{
		{"apiKey", func(p string, v *yaml.Node) { a.APIKey, _ = d.boolean(p, v) }},
		{"jwt", func(p string, v *yaml.Node) {
			j := &JWTAuth{}
			if d.object(p, v, []field{
				{"issuer", func(p string, v *yaml.Node) { j.Issuer, _ = d.str(p, v) }},
				{"audience", func(p string, v *yaml.Node) { j.Audience, _ = d.str(p, v) }},
				{"jwks", func(p string, v *yaml.Node) { j.JWKS, _ = d.str(p, v) }},
			}) {
				a.JWT = j
			}
		}},
		{"scopes", func(p string, v *yaml.Node) { a.Scopes, _ = d.strList(p, v) }},
	})
	return a
}

// byteSize decodes a size: a number of bytes or a string with a unit.
func (d *decoder) byteSize(path string, n *yaml.Node) (ByteSize, bool) {
	if n.Kind != yaml.ScalarNode {
		d.expected(n, path, "a size")
		return 0, false
	}
	v, err := ParseByteSize(n.Value)
	if err != nil {
		d.fail(n, path, "%v", err)
		return 0, false
	}
	return v, true
}

// timer decodes a timer: a mapping, or a string holding just the schedule.
func (d *decoder) timer(path string, n *yaml.Node) *Timer {
	t := &Timer{}
	if n.Kind == yaml.ScalarNode {
		d.pos[join(path, "schedule")] = d.pos[path]
		t.Schedule = n.Value
		return t
	}
	if n.Kind != yaml.MappingNode {
		d.expected(n, path, "a mapping or a schedule")
		return nil
	}
	d.object(path, n, []field{
		{"schedule", func(p string, v *yaml.Node) { t.Schedule, _ = d.str(p, v) }},
		{"timezone", func(p string, v *yaml.Node) { t.Timezone, _ = d.str(p, v) }},
		{"stream", func(p string, v *yaml.Node) { t.Stream, _ = d.str(p, v) }},
		{"catchUp", func(p string, v *yaml.Node) { t.CatchUp, _ = d.str(p, v) }},
	})
	return t
}

// streams decodes the stream bindings; an item is a mapping or a name.
func (d *decoder) streams(path string, n *yaml.Node) []StreamBinding {
	return list(d, path, n, func(p string, v, item *yaml.Node, s *StreamBinding) {
		switch {
		case isNull(v) || v.Kind == yaml.SequenceNode:
			d.expected(item, p, "a mapping or a stream name")
		case v.Kind == yaml.ScalarNode:
			d.pos[join(p, "name")] = d.pos[p]
			s.Name = v.Value
		default:
			d.object(p, v, []field{
				{"name", func(p string, v *yaml.Node) { s.Name, _ = d.str(p, v) }},
				{"offset", func(p string, v *yaml.Node) { s.Offset, _ = d.offset(p, v) }},
				{"filter", func(p string, v *yaml.Node) { s.Filter, _ = d.strMap(p, v) }},
			})
		}
	})
}

// offset decodes any form of offset (DESIGN §4).
func (d *decoder) offset(path string, n *yaml.Node) (Offset, bool) {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.ShortTag() == "!!int" {
			v, ok := d.integer64(path, n)
			if !ok {
				return Offset{}, false
			}
			if v < 0 {
				d.fail(n, path, "offset %d is negative: use first, latest or a number from 0", v)
				return Offset{}, false
			}
			return Offset{Kind: OffsetAt, At: v}, true
		}
		o, err := ParseOffset(n.Value)
		if err != nil {
			d.fail(n, path, "%v", err)
			return Offset{}, false
		}
		return o, true
	case yaml.MappingNode:
		parts := map[int32]int64{}
		ok := true
		for _, e := range d.pairs(path, n) {
			kp := key(path, e.key.Value)
			part, err := parsePartition(e.key.Value)
			if err != nil {
				d.fail(e.key, kp, "%v", err)
				ok = false
				continue
			}
			if _, dup := parts[part]; dup {
				d.fail(e.key, kp, "partition %d is given twice", part)
				ok = false
				continue
			}
			v := d.resolve(e.val)
			if v == nil {
				return Offset{}, false
			}
			d.pos[kp] = d.at(e.val)
			at, good := d.integer64(kp, v)
			if !good {
				ok = false
				continue
			}
			if at < 0 {
				d.fail(e.val, kp, "offset %d is negative: use a number from 0", at)
				ok = false
				continue
			}
			parts[part] = at
		}
		if len(parts) == 0 && ok {
			d.fail(n, path, "the partition map is empty: give at least one partition, or use first or latest")
			return Offset{}, false
		}
		return Offset{Kind: OffsetPartitions, Partitions: parts}, ok
	}
	d.fail(n, path, "expected first, latest, a number, an RFC 3339 time or a partition map, got %s", describe(n))
	return Offset{}, false
}

func (d *decoder) delivery(path string, n *yaml.Node, dl *Delivery) {
	d.object(path, n, []field{
		{"retries", func(p string, v *yaml.Node) { dl.Retries, _ = d.integer(p, v) }},
		{"backoff", func(p string, v *yaml.Node) { dl.Backoff, _ = d.duration(p, v) }},
		{"maxBackoff", func(p string, v *yaml.Node) { dl.MaxBackoff, _ = d.duration(p, v) }},
		{"timeout", func(p string, v *yaml.Node) { dl.Timeout, _ = d.duration(p, v) }},
		{"deadLetter", func(p string, v *yaml.Node) { dl.DeadLetter, _ = d.str(p, v) }},
		{"ordering", func(p string, v *yaml.Node) { dl.Ordering, _ = d.str(p, v) }},
		{"guarantee", func(p string, v *yaml.Node) { dl.Guarantee, _ = d.str(p, v) }},
		{"batch", func(p string, v *yaml.Node) { dl.Batch, _ = d.integer(p, v) }},
	})
}

func (d *decoder) scale(path string, n *yaml.Node, s *Scale) {
	d.object(path, n, []field{
		{"min", func(p string, v *yaml.Node) {
			if m, ok := d.integer(p, v); ok {
				s.Min = &m
			}
		}},
		{"max", func(p string, v *yaml.Node) { s.Max, _ = d.integer(p, v) }},
		{"concurrency", func(p string, v *yaml.Node) { s.Concurrency, _ = d.integer(p, v) }},
		{"lagPerReplica", func(p string, v *yaml.Node) { s.LagPerReplica, _ = d.integer64(p, v) }},
		{"activationLag", func(p string, v *yaml.Node) { s.ActivationLag, _ = d.integer64(p, v) }},
		{"idleAfter", func(p string, v *yaml.Node) { s.IdleAfter, _ = d.duration(p, v) }},
	})
}
