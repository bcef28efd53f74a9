package butter

import "embed"

// Source is this module's own source (its Go files and go.mod). The SDK is
// not published on any module proxy, so the deployer, which builds go
// functions at deploy time with the network off, writes this copy to disk
// and points the function's go.mod at it with a replace directive.
//
//go:embed *.go go.mod
var Source embed.FS
