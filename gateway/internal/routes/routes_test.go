package routes

import (
	"log/slog"
	"testing"

	"github.com/buttercompass/butter/proto/descriptor"
)

func TestMatchLongestContext(t *testing.T) {
	tb := New(slog.New(slog.DiscardHandler))
	tb.set("a", []Route{{Deployment: "a", Context: "/api"}, {Deployment: "a", Context: "/"}})
	tb.set("b", []Route{{Deployment: "b", Context: "/api/orders"}})
	tb.set("c", []Route{{Deployment: "c", Context: "/api/orders"}})
	cases := map[string]string{"/api/orders/1": "b", "/api/orders": "b", "/api/ordersx": "a", "/api": "a", "/x": "a"}
	for path, want := range cases {
		if r, ok := tb.Match(path); !ok || r.Deployment != want {
			t.Errorf("%s: got %+v", path, r)
		}
	}
	tb.set("a", nil)
	if _, ok := tb.Match("/x"); ok {
		t.Error("removed route still matches")
	}
	if Normalize("/a/") != "/a" || Normalize("") != "/" || Normalize("a") != "/a" {
		t.Error("normalize")
	}
	_ = descriptor.Route{}
}
