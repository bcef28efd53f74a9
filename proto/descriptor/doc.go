// Package descriptor reads the deployment descriptor (DESIGN §4): the YAML
// file that wires a deployment's functions to HTTP routes, cron timers and
// streams. JSON is accepted too, being a subset of YAML, because the
// deployer API takes both.
//
// Parse is the only way in. It walks the YAML node tree itself rather than
// unmarshalling into structs, because only the node tree knows where each
// value sits: every problem is reported with its file, line, column and
// field path, and all of them are reported at once (a bad descriptor is
// rejected whole). A descriptor that Parse returns without error is valid
// and has every default filled in (see docs/descriptor.md and defaults.go),
// so services read fields without re-checking them.
//
// A parsed Descriptor marshals to JSON that parses back to the same
// Descriptor; that JSON is the canonical stored form.
package descriptor
