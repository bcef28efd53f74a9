package archive

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// ent is an archive entry: a file with body, a directory (name ending in
// /) or a symlink to link.
type ent struct{ name, body, link string }

// tarGz packs entries in the order given.
func tarGz(t *testing.T, ents ...ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	gw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gw)
	for _, e := range ents {
		hdr := &tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), Typeflag: tar.TypeReg}
		switch {
		case e.link != "":
			hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeSymlink, e.link, 0
		case e.name[len(e.name)-1] == '/':
			hdr.Typeflag, hdr.Size, hdr.Mode = tar.TypeDir, 0, 0o755
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if hdr.Typeflag == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

var desc = ent{name: "butter.yaml", body: "name: x\n"}

// TestLinksThatPointOutAreRefused: links are followed as the unpacked
// filesystem would follow them, so chains of links that each look inside
// by name but lead out are refused, as are entries unpacked through a link
// and names that conflict; links that stay inside unpack.
func TestLinksThatPointOutAreRefused(t *testing.T) {
	bad := []struct {
		name string
		ents []ent
		want error
	}{
		{"link out", []ent{desc, {name: "out", link: "../x"}}, ErrUnsafePath},
		{"absolute link", []ent{desc, {name: "out", link: "/etc"}}, ErrUnsafePath},
		{"file through a link", []ent{desc, {name: "d", link: "."}, {name: "d/pwned", body: "x"}}, ErrUnsafePath},
		{"link through a link", []ent{desc, {name: "deep", link: "."}, {name: "x", link: "deep/.."}}, ErrUnsafePath},
		{"chain of links", []ent{desc, {name: "deep", link: "."}, {name: "deep/x", link: ".."}, {name: "x/pwned", body: "x"}}, ErrUnsafePath},
		{"link made later on a passed directory", []ent{desc, {name: "b", link: "c/d"}, {name: "c", link: ".."}}, ErrUnsafePath},
		{"file then a file under it", []ent{desc, {name: "a", body: "x"}, {name: "a/b", body: "y"}}, ErrPathConflict},
		{"link twice", []ent{desc, {name: "l", link: "butter.yaml"}, {name: "l", link: "butter.yaml"}}, ErrPathConflict},
		{"directory then a link on it", []ent{desc, {name: "a/b", body: "x"}, {name: "a", link: "."}}, ErrPathConflict},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Read(TypeGzip, tarGz(t, tc.ents...))
			if !errors.Is(err, tc.want) {
				t.Fatalf("Read: %v, want %v", err, tc.want)
			}
			dir := filepath.Join(t.TempDir(), "code")
			if err := Extract(tarGz(t, tc.ents...), dir); !errors.Is(err, tc.want) {
				t.Fatalf("Extract: %v, want %v", err, tc.want)
			}
		})
	}

	code := tarGz(t, desc, ent{name: "lib/"}, ent{name: "lib/a.js", body: "a"}, ent{name: "lib/"},
		ent{name: "cur", link: "."}, ent{name: "lib/up", link: "../butter.yaml"}, ent{name: "alias", link: "lib/a.js"},
		ent{name: "alias2", link: "alias"})
	if _, err := Read(TypeGzip, code); err != nil {
		t.Fatalf("links inside: %v", err)
	}
	dir := filepath.Join(t.TempDir(), "code")
	if err := Extract(code, dir); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"cur/lib/up": "name: x\n", "alias2": "a"} {
		if b, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(b) != want {
			t.Errorf("%s: %q, %v; want %q", name, b, err, want)
		}
	}
}
