package deploy_test

import (
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/buttercompass/butter/proto/access"
)

// repo is the repository root: this file is e2e/deploy/files_test.go.
func repo(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("no caller information")
	}
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// imageTag is what deploy/build-images.sh tags images with by default.
const imageTag = "dev"

// builtImages are the images make service-images builds: butter-<s>:dev
// for every deploy/docker/<s>.Dockerfile.
func builtImages(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repo(t), "deploy", "docker", "*.Dockerfile"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no deploy/docker/*.Dockerfile: %v", err)
	}
	var images []string
	for _, f := range files {
		images = append(images, "butter-"+strings.TrimSuffix(filepath.Base(f), ".Dockerfile")+":"+imageTag)
	}
	return images
}

// TestDockerfiles: every service image is FROM scratch only (nothing can be
// pulled), has no BuildKit syntax line (built with DOCKER_BUILDKIT=0), runs
// as a non-root user and starts a binary the build script builds.
func TestDockerfiles(t *testing.T) {
	t.Parallel()
	script, err := os.ReadFile(filepath.Join(repo(t), "deploy", "build-images.sh"))
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(repo(t), "deploy", "docker", "*.Dockerfile"))
	from := regexp.MustCompile(`(?mi)^\s*FROM\s+(\S+)`)
	user := regexp.MustCompile(`(?mi)^\s*USER\s+(\S+)`)
	entry := regexp.MustCompile(`(?mi)^\s*ENTRYPOINT\s+\["/([^"]+)"`)
	for _, f := range files {
		name := filepath.Base(f)
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		text := string(data)
		if regexp.MustCompile(`(?mi)^#\s*syntax\s*=`).MatchString(text) {
			t.Errorf("%s: has a # syntax= line; the classic builder is used (DOCKER_BUILDKIT=0)", name)
		}
		for _, m := range from.FindAllStringSubmatch(text, -1) {
			if m[1] != "scratch" {
				t.Errorf("%s: FROM %s; only scratch can be used (no registry)", name, m[1])
			}
		}
		u := user.FindAllStringSubmatch(text, -1)
		if len(u) == 0 || strings.HasPrefix(u[len(u)-1][1], "0") || strings.HasPrefix(u[len(u)-1][1], "root") {
			t.Errorf("%s: does not end as a non-root USER: %v", name, u)
		}
		e := entry.FindStringSubmatch(text)
		if e == nil {
			t.Errorf("%s: no exec-form ENTRYPOINT", name)
			continue
		}
		svc := strings.TrimSuffix(name, ".Dockerfile")
		if !strings.Contains(string(script), "["+svc+"]=") || !strings.Contains(string(script), "/cmd/"+e[1]) {
			t.Errorf("%s: deploy/build-images.sh does not build %s for service %s", name, e[1], svc)
		}
	}
}

// butterVars are the BUTTER_* variables named in text.
func butterVars(text string) []string {
	vars := regexp.MustCompile(`\bBUTTER_[A-Z0-9_]+`).FindAllString(text, -1)
	slices.Sort(vars)
	return slices.Compact(vars)
}

// passwordEnv is the variable `butter principals` reads a service user's
// password from (cli/internal/commands.PasswordEnv).
func passwordEnv(user string) string {
	return "BUTTER_" + strings.ToUpper(strings.TrimPrefix(user, "butter-")) + "_PASSWORD"
}

// checkVarsKnown fails for every BUTTER_* variable that no Go source of the
// platform reads: a typo there is silently ignored by the service.
func checkVarsKnown(t *testing.T, where string, vars []string) {
	t.Helper()
	known := map[string]bool{}
	root := repo(t)
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "node_modules" || path == filepath.Join(root, "e2e", "deploy")) {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, v := range butterVars(string(data)) {
			known[v] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range access.Services() {
		known[passwordEnv(u)] = true // butter principals reads these
	}
	for _, v := range vars {
		if !known[v] {
			t.Errorf("%s sets %s, which no service reads", where, v)
		}
	}
}
