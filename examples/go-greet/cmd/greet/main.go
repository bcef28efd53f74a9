// Command greet greets every gopher on the gophers stream.
package main

import (
	"context"

	butter "github.com/buttercompass/butter/sdk/go"
)

func main() {
	butter.Handle(func(ctx context.Context, e butter.Event) (any, error) {
		var in struct {
			Name string `json:"name"`
		}
		if err := e.DecodeData(&in); err != nil {
			return nil, butter.Permanent(err) // not JSON: dead-letter it, retrying cannot help
		}
		butter.Log(ctx, "greeting %s", in.Name)
		return map[string]string{"greeting": "hello, " + in.Name + ", from Go"}, nil
	})
}
