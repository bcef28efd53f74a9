module github.com/buttercompass/butter/cli

go 1.26.0

require (
	github.com/buttercompass/butter/broker-bridge v0.0.0
	github.com/buttercompass/butter/proto v0.0.0
)

replace (
	github.com/buttercompass/butter/broker-bridge => ../broker-bridge
	github.com/buttercompass/butter/proto => ../proto
)
