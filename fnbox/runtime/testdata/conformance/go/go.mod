// Conformance fixture for the go platform, built by the conformance test
// with GOWORK=off: it is not part of the workspace.
module github.com/buttercompass/butter/fnbox/runtime/testdata/conformance/go

go 1.26.0

require github.com/buttercompass/butter/sdk/go v0.0.0

replace github.com/buttercompass/butter/sdk/go => ../../../../../sdk/go
