module github.com/buttercompass/butter/gateway

go 1.26.0

require github.com/buttercompass/butter/proto v0.0.0

replace github.com/buttercompass/butter/proto => ../proto
