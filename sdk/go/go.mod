module github.com/buttercompass/butter/sdk/go

go 1.26.0
