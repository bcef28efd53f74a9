module github.com/buttercompass/butter/fnbox/sdk

go 1.26.0
