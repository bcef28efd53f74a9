package archive

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestWithDescriptor(t *testing.T) {
	code := tarGz(t, ent{name: "./butter.yaml", body: "secretEnv: {A: hunter2}\n"},
		ent{name: "lib/"}, ent{name: "lib/handler.py", body: "def f(e, c): pass\n"}, ent{name: "h.py", link: "lib/handler.py"})
	out, err := WithDescriptor(code, []byte("secretEnv: {A: sealed}\n"))
	if err != nil {
		t.Fatal(err)
	}
	again, _ := WithDescriptor(code, []byte("secretEnv: {A: sealed}\n"))
	if !bytes.Equal(out, again) {
		t.Fatal("the same code and descriptor gave different archives")
	}
	desc, err := check(out)
	if err != nil || string(desc) != "secretEnv: {A: sealed}\n" {
		t.Fatalf("descriptor in the new archive = %q, %v", desc, err)
	}
	dir := filepath.Join(t.TempDir(), "x")
	if err := Extract(out, dir); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "h.py")); err != nil || string(b) != "def f(e, c): pass\n" {
		t.Fatalf("code through the link = %q, %v", b, err)
	}
	if _, err := WithDescriptor(tarGz(t, ent{name: "a", body: "b"}), []byte("x")); !errors.Is(err, ErrNoDescriptor) {
		t.Fatalf("no butter.yaml: %v", err)
	}
}
