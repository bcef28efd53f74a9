module example.com/go-greet

go 1.26.0

require github.com/buttercompass/butter/sdk/go v0.0.0

// For local builds and tests inside this repository; the deployer
// replaces the SDK with its own copy.
replace github.com/buttercompass/butter/sdk/go => ../../sdk/go
