package stdio

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// interpreter returns the program to run for command (python3, node) and
// what to add to its environment: command itself and nothing, unless
// command is a pyenv shim.
//
// A pyenv shim (a bash script in $PYENV_ROOT/shims) costs 60-500 ms per
// start on this class of machine, more than the interpreter itself, and a
// python host starts on every cold start: the shim is skipped when the
// version it would pick is certain, found as pyenv finds it (PYENV_VERSION,
// else .python-version in dir or a parent, else $PYENV_ROOT/version, one
// installed version named). Like `pyenv exec`, the version's bin directory
// then comes first on PATH, so the function's own subprocesses (python3,
// pip) are that version's. Anything else (system python, several
// versions, a version not installed) keeps the shim.
func interpreter(command, dir string, env []string) (program string, extraEnv []string) {
	if lookupEnv(env, "PYENV_DIR") != "" {
		return command, nil // pyenv would look for .python-version elsewhere
	}
	p, err := exec.LookPath(command)
	if err != nil {
		return command, nil
	}
	shims := filepath.Dir(p)
	if filepath.Base(shims) != "shims" || !isPyenvShim(p) {
		return command, nil
	}
	root := lookupEnv(env, "PYENV_ROOT")
	if root == "" {
		root = filepath.Dir(shims)
	}
	version := lookupEnv(env, "PYENV_VERSION")
	if version == "" {
		version = versionFile(dir, root)
	}
	if version == "" || version == "system" || strings.ContainsAny(version, ": /") || strings.HasPrefix(version, ".") {
		return command, nil
	}
	bin := filepath.Join(root, "versions", version, "bin")
	prog := filepath.Join(bin, command)
	if st, err := os.Stat(prog); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		return command, nil
	}
	// What `pyenv exec` exports before it runs the program.
	return prog, []string{"PYENV_ROOT=" + root, "PYENV_VERSION=" + version, "PATH=" + bin + string(os.PathListSeparator) + lookupEnv(env, "PATH")}
}

// isPyenvShim reports whether the file at p is a script that runs pyenv.
func isPyenvShim(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	head := make([]byte, 1024)
	n, _ := f.Read(head)
	head = head[:n]
	return bytes.HasPrefix(head, []byte("#!")) && bytes.Contains(head, []byte("pyenv")) && bytes.Contains(head, []byte(" exec "))
}

// versionFile is the version named by the nearest .python-version from dir
// up, else by $PYENV_ROOT/version; "" when there is none or it names more
// than one version (pyenv would then search them in order).
func versionFile(dir, root string) string {
	for d := dir; ; {
		if v, ok := readVersion(filepath.Join(d, ".python-version")); ok {
			return v
		}
		parent := filepath.Dir(d)
		if parent == d {
			break
		}
		d = parent
	}
	v, _ := readVersion(filepath.Join(root, "version"))
	return v
}

// readVersion reads a pyenv version file: ok when it exists, the version
// when it names exactly one.
func readVersion(file string) (string, bool) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", false
	}
	var names []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		for _, w := range strings.Fields(sc.Text()) {
			if strings.HasPrefix(w, "#") {
				break
			}
			names = append(names, w)
		}
	}
	if len(names) != 1 {
		return "", true
	}
	return names[0], true
}

// lookupEnv is the last value of key in env, as exec uses it.
func lookupEnv(env []string, key string) string {
	v := ""
	for _, kv := range env {
		if k, val, ok := strings.Cut(kv, "="); ok && k == key {
			v = val
		}
	}
	return v
}
