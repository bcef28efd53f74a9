package commands

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestPackDeploymentDirectory: a code directory is packed without its
// hidden files and with its links as links; naming its butter.yaml packs
// the directory too, as `butter fn test` runs it.
func TestPackDeploymentDirectory(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"butter.yaml": "name: pk\nplatform: python\nfunctions:\n  - fn: handler.py:f\n    bindings: {streams: [in]}\n",
		"handler.py":  "def f(event, context):\n    return 1\n",
		"lib/util.py": "X = 1\n",
		".env":        "SECRET=1\n",
		"lib/.hidden": "x\n",
		".git/config": "x\n",
	}
	for name, body := range files {
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("lib/util.py", filepath.Join(dir, "util.py")); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{dir, filepath.Join(dir, "butter.yaml")} {
		pkg, err := packDeployment(path)
		if err != nil {
			t.Fatalf("pack %s: %v", path, err)
		}
		if pkg.name != "pk" || pkg.contentType != "application/gzip" {
			t.Fatalf("pack %s: name %q, type %q; want the directory as an archive", path, pkg.name, pkg.contentType)
		}
		got := map[string]string{} // name → body or "-> link"
		zr, err := gzip.NewReader(bytes.NewReader(pkg.body))
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(zr)
		for {
			hdr, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if hdr.Typeflag == tar.TypeSymlink {
				got[hdr.Name] = "-> " + hdr.Linkname
				continue
			}
			b, _ := io.ReadAll(tr)
			got[hdr.Name] = string(b)
		}
		var names []string
		for n := range got {
			names = append(names, n)
		}
		slices.Sort(names)
		if want := []string{"butter.yaml", "handler.py", "lib/util.py", "util.py"}; !slices.Equal(names, want) {
			t.Errorf("pack %s: entries %v, want %v", path, names, want)
		}
		if got["util.py"] != "-> lib/util.py" {
			t.Errorf("pack %s: util.py = %q, want a link to lib/util.py", path, got["util.py"])
		}
	}
}
