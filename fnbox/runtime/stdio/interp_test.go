package stdio

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestInterpreterPyenv checks a pyenv shim is skipped only when the
// version it would run is certain, with the environment `pyenv exec` sets.
func TestInterpreterPyenv(t *testing.T) {
	root := t.TempDir()
	write := func(path, content string, mode os.FileMode) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
	shim := "#!/usr/bin/env bash\nset -e\nexport PYENV_ROOT=\"" + root + "\"\nexec \"" + root + "/libexec/pyenv\" exec \"$program\" \"$@\"\n"
	write(filepath.Join(root, "shims", "python3"), shim, 0o755)
	write(filepath.Join(root, "versions", "3.99.1", "bin", "python3"), "", 0o755)
	write(filepath.Join(root, "versions", "3.98.0", "bin", "python3"), "", 0o755)
	write(filepath.Join(root, "version"), "3.99.1\n", 0o644)
	code := t.TempDir()
	pinned := filepath.Join(code, "pinned")
	write(filepath.Join(pinned, ".python-version"), "# pinned\n3.98.0\n", 0o644)
	several := filepath.Join(code, "several")
	write(filepath.Join(several, ".python-version"), "3.98.0\n3.99.1\n", 0o644)
	missing := filepath.Join(code, "missing")
	write(filepath.Join(missing, ".python-version"), "3.11\n", 0o644)
	system := filepath.Join(code, "system")
	write(filepath.Join(system, ".python-version"), "system\n", 0o644)
	t.Setenv("PATH", filepath.Join(root, "shims"))
	env := []string{"PATH=" + filepath.Join(root, "shims")}
	bin := func(v string) string { return filepath.Join(root, "versions", v, "bin") }

	for _, tc := range []struct {
		name, dir string
		env       []string
		want      string // "" means the shim is kept
	}{
		{"global version", code, env, "3.99.1"},
		{"local version file", filepath.Join(pinned, "sub"), env, "3.98.0"},
		{"PYENV_VERSION", pinned, append(slices.Clip(env), "PYENV_VERSION=3.99.1"), "3.99.1"},
		{"several versions", several, env, ""},
		{"version not installed", missing, env, ""},
		{"system", system, env, ""},
		{"PYENV_DIR", code, append(slices.Clip(env), "PYENV_DIR=/elsewhere"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prog, extra := interpreter("python3", tc.dir, tc.env)
			if tc.want == "" {
				if prog != "python3" || extra != nil {
					t.Fatalf("interpreter = %q %v, want the shim kept", prog, extra)
				}
				return
			}
			if want := filepath.Join(bin(tc.want), "python3"); prog != want {
				t.Fatalf("interpreter = %q, want %q", prog, want)
			}
			wantEnv := []string{"PYENV_ROOT=" + root, "PYENV_VERSION=" + tc.want, "PATH=" + bin(tc.want) + ":" + filepath.Join(root, "shims")}
			if !slices.Equal(extra, wantEnv) {
				t.Errorf("env = %v, want %v", extra, wantEnv)
			}
		})
	}

	// Not a shim: a python3 of its own is run as it is.
	plain := t.TempDir()
	write(filepath.Join(plain, "python3"), "\x7fELF", 0o755)
	t.Setenv("PATH", plain)
	if prog, extra := interpreter("python3", code, []string{"PATH=" + plain}); prog != "python3" || extra != nil {
		t.Errorf("interpreter of a plain python3 = %q %v, want it kept", prog, extra)
	}
}
