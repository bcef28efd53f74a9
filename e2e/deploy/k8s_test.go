package deploy_test

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/buttercompass/butter/proto/access"
)

// namespace is where every manifest in deploy/k8s puts its objects.
const namespace = "butter"

// manifests are the objects of deploy/k8s, by kind.
type manifests struct {
	namespaces   []*corev1.Namespace
	secrets      []*corev1.Secret
	services     []*corev1.Service
	claims       []*corev1.PersistentVolumeClaim
	deployments  []*appsv1.Deployment
	statefulSets []*appsv1.StatefulSet
	jobs         []*batchv1.Job
	text         strings.Builder // every document, for the BUTTER_* check
}

// workload is a Deployment, StatefulSet or Job seen through what the
// checks need.
type workload struct {
	where    string
	selector *metav1.LabelSelector // nil for a Job
	pod      corev1.PodTemplateSpec
	claims   []string // volumeClaimTemplates
	// serves says the workload runs until stopped, behind probes; a Job
	// runs to completion.
	serves bool
}

// newObject returns an empty object of a document's kind, or an error for
// a kind the platform's manifests are not expected to hold.
func newObject(tm metav1.TypeMeta) (any, error) {
	switch tm.APIVersion + " " + tm.Kind {
	case "v1 Namespace":
		return &corev1.Namespace{}, nil
	case "v1 Secret":
		return &corev1.Secret{}, nil
	case "v1 Service":
		return &corev1.Service{}, nil
	case "v1 PersistentVolumeClaim":
		return &corev1.PersistentVolumeClaim{}, nil
	case "apps/v1 Deployment":
		return &appsv1.Deployment{}, nil
	case "apps/v1 StatefulSet":
		return &appsv1.StatefulSet{}, nil
	case "batch/v1 Job":
		return &batchv1.Job{}, nil
	}
	return nil, fmt.Errorf("unexpected apiVersion %q kind %q", tm.APIVersion, tm.Kind)
}

// loadManifests decodes every document of deploy/k8s/*.yaml strictly: an
// unknown or misspelt field, or a duplicate key, fails the test as kubectl
// apply --validate=strict would.
func loadManifests(t *testing.T) *manifests {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repo(t), "deploy", "k8s", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no deploy/k8s/*.yaml: %v", err)
	}
	m := &manifests{}
	sep := regexp.MustCompile(`(?m)^---[ \t]*$`)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range sep.Split(string(data), -1) {
			where := fmt.Sprintf("%s document %d", filepath.Base(f), i+1)
			var generic map[string]any
			if err := yaml.Unmarshal([]byte(doc), &generic); err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			if len(generic) == 0 {
				continue // comments only
			}
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			obj, err := newObject(tm)
			if err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
				t.Fatalf("%s: not a valid %s: %v", where, tm.Kind, err)
			}
			m.text.WriteString(doc)
			switch o := obj.(type) {
			case *corev1.Namespace:
				m.namespaces = append(m.namespaces, o)
			case *corev1.Secret:
				m.secrets = append(m.secrets, o)
			case *corev1.Service:
				m.services = append(m.services, o)
			case *corev1.PersistentVolumeClaim:
				m.claims = append(m.claims, o)
			case *appsv1.Deployment:
				m.deployments = append(m.deployments, o)
			case *appsv1.StatefulSet:
				m.statefulSets = append(m.statefulSets, o)
			case *batchv1.Job:
				m.jobs = append(m.jobs, o)
			}
		}
	}
	return m
}

func (m *manifests) workloads() []workload {
	var ws []workload
	for _, d := range m.deployments {
		ws = append(ws, workload{where: "Deployment " + d.Name, selector: d.Spec.Selector, pod: d.Spec.Template, serves: true})
	}
	for _, s := range m.statefulSets {
		w := workload{where: "StatefulSet " + s.Name, selector: s.Spec.Selector, pod: s.Spec.Template, serves: true}
		for _, c := range s.Spec.VolumeClaimTemplates {
			w.claims = append(w.claims, c.Name)
		}
		ws = append(ws, w)
	}
	for _, j := range m.jobs {
		ws = append(ws, workload{where: "Job " + j.Name, pod: j.Spec.Template})
	}
	return ws
}

func (m *manifests) secretKeys(name string) (map[string]bool, bool) {
	for _, s := range m.secrets {
		if s.Name == name {
			keys := map[string]bool{}
			for k := range s.Data {
				keys[k] = true
			}
			for k := range s.StringData {
				keys[k] = true
			}
			return keys, true
		}
	}
	return nil, false
}

func matches(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// TestKubernetesManifests decodes every manifest into the k8s.io/api types
// with unknown fields refused, then checks what the API server would not:
// that the objects fit together.
func TestKubernetesManifests(t *testing.T) {
	t.Parallel()
	m := loadManifests(t)
	if len(m.namespaces) != 1 || m.namespaces[0].Name != namespace {
		t.Fatalf("want exactly the Namespace %q, got %d namespaces", namespace, len(m.namespaces))
	}
	if len(m.statefulSets) != 1 || len(m.statefulSets[0].Spec.VolumeClaimTemplates) == 0 {
		t.Error("want the broker as a StatefulSet with a volume claim template")
	}
	for _, name := range []string{"butter-broker-credentials", "butter-deployer-token"} {
		if _, ok := m.secretKeys(name); !ok {
			t.Errorf("no Secret %s", name)
		}
	}
	objects := []metav1.Object{}
	for _, o := range m.secrets {
		objects = append(objects, o)
	}
	for _, o := range m.services {
		objects = append(objects, o)
	}
	for _, o := range m.claims {
		objects = append(objects, o)
	}
	for _, o := range m.deployments {
		objects = append(objects, o)
	}
	for _, o := range m.statefulSets {
		objects = append(objects, o)
	}
	for _, o := range m.jobs {
		objects = append(objects, o)
	}
	for _, o := range objects {
		if o.GetNamespace() != namespace {
			t.Errorf("%s is in namespace %q, want %q", o.GetName(), o.GetNamespace(), namespace)
		}
	}

	images := builtImages(t)
	used := map[string]bool{}
	ws := m.workloads()
	for _, w := range ws {
		used = checkWorkload(t, m, w, images, used)
	}
	for _, img := range images {
		if !used[img] {
			t.Errorf("image %s (deploy/docker) runs in no workload", img)
		}
	}
	for _, s := range m.statefulSets {
		if !slices.ContainsFunc(m.services, func(svc *corev1.Service) bool { return svc.Name == s.Spec.ServiceName }) {
			t.Errorf("StatefulSet %s: serviceName %q names no Service", s.Name, s.Spec.ServiceName)
		}
	}

	// Every Service selects exactly one workload, and every port leads to
	// a port its containers declare.
	for _, svc := range m.services {
		var sel []workload
		for _, w := range ws {
			if matches(svc.Spec.Selector, w.pod.Labels) {
				sel = append(sel, w)
			}
		}
		if len(sel) != 1 {
			t.Errorf("Service %s: selector %v matches %d workloads, want 1", svc.Name, svc.Spec.Selector, len(sel))
			continue
		}
		for _, p := range svc.Spec.Ports {
			if !hasPort(sel[0].pod.Spec, p.TargetPort) {
				t.Errorf("Service %s port %s: targetPort %s is no container port of %s", svc.Name, p.Name, p.TargetPort.String(), sel[0].where)
			}
		}
	}
	// Each service logs in as itself; the admin's password reaches only
	// the broker and the principals Job, which makes the services' users
	// with the same passwords the services get.
	made := map[string]corev1.SecretKeySelector{}
	for _, j := range m.jobs {
		for _, c := range j.Spec.Template.Spec.Containers {
			for _, e := range c.Env {
				if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && strings.HasSuffix(e.Name, "_PASSWORD") {
					made[e.Name] = *e.ValueFrom.SecretKeyRef
				}
			}
		}
	}
	for _, d := range m.deployments {
		for _, c := range d.Spec.Template.Spec.Containers {
			user, pass := "", corev1.SecretKeySelector{}
			for _, e := range c.Env {
				switch {
				case e.Name == "BUTTER_SASL_USER":
					user = e.Value
				case e.Name == "BUTTER_SASL_PASSWORD" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
					pass = *e.ValueFrom.SecretKeyRef
				}
			}
			if user != "butter-"+d.Name || !slices.Contains(access.Services(), user) {
				t.Errorf("Deployment %s logs in as %q; want its own principal butter-%s", d.Name, user, d.Name)
				continue
			}
			if want, ok := made[passwordEnv(user)]; !ok || want.Name != pass.Name || want.Key != pass.Key {
				t.Errorf("Deployment %s: password from %s/%s, but the principals Job sets %s from %s/%s", d.Name, pass.Name, pass.Key, user, want.Name, want.Key)
			}
		}
	}
	checkSecretKey(t, m)
	checkVarsKnown(t, "deploy/k8s", butterVars(m.text.String()))
}

// checkSecretKey: the deployer, which seals descriptor secrets, and the
// bridge, which opens the ones bridges name, read one key: the same key of
// the same Secret, mounted read-only with a mode the deployer's key check
// takes (0400 or 0600; the kubelet adds group read for fsGroup, which the
// check allows of a root-owned file), at the path BUTTER_SECRET_KEY_FILE
// names. The template's key is a usable one: 32 bytes, base64.
func checkSecretKey(t *testing.T, m *manifests) {
	t.Helper()
	type source struct{ secret, key string }
	seen := map[string]source{}
	for _, d := range m.deployments {
		if d.Name != "deployer" && d.Name != "bridge" {
			continue
		}
		pod := d.Spec.Template.Spec
		for _, c := range pod.Containers {
			where := "Deployment " + d.Name + " container " + c.Name
			file := ""
			for _, e := range c.Env {
				if e.Name == "BUTTER_SECRET_KEY_FILE" {
					file = e.Value
				}
			}
			if !filepath.IsAbs(file) {
				t.Errorf("%s: BUTTER_SECRET_KEY_FILE %q; want the absolute path of the mounted key Secret", where, file)
				continue
			}
			var mount *corev1.VolumeMount
			for i, vm := range c.VolumeMounts {
				if strings.HasPrefix(file, strings.TrimSuffix(vm.MountPath, "/")+"/") {
					mount = &c.VolumeMounts[i]
				}
			}
			if mount == nil {
				t.Errorf("%s: BUTTER_SECRET_KEY_FILE %s is in no volume it mounts", where, file)
				continue
			}
			if !mount.ReadOnly || mount.SubPath != "" {
				// A subPath mount would not see a rotated key.
				t.Errorf("%s: key volume %s mounted readOnly %v, subPath %q; want read-only, whole", where, mount.Name, mount.ReadOnly, mount.SubPath)
			}
			rel := strings.TrimPrefix(file, strings.TrimSuffix(mount.MountPath, "/")+"/")
			idx := slices.IndexFunc(pod.Volumes, func(v corev1.Volume) bool { return v.Name == mount.Name })
			if idx < 0 || pod.Volumes[idx].Secret == nil {
				t.Errorf("%s: key volume %s is not a Secret volume", where, mount.Name)
				continue
			}
			sv := pod.Volumes[idx].Secret
			key, mode := rel, sv.DefaultMode
			if len(sv.Items) > 0 {
				key = ""
				for _, it := range sv.Items {
					if it.Path == rel {
						key = it.Key
						if it.Mode != nil {
							mode = it.Mode
						}
					}
				}
			}
			if mode == nil || (*mode != 0o400 && *mode != 0o600) {
				got := "unset (0644)"
				if mode != nil {
					got = fmt.Sprintf("%04o", *mode)
				}
				t.Errorf("%s: key file mode %s; want 0400 or 0600 (the deployer refuses a key others can read)", where, got)
			}
			keys, ok := m.secretKeys(sv.SecretName)
			if !ok || key == "" || !keys[key] {
				t.Errorf("%s: %s is no key of Secret %q", where, rel, sv.SecretName)
				continue
			}
			seen[d.Name] = source{sv.SecretName, key}
		}
	}
	if len(seen) != 2 || seen["deployer"] != seen["bridge"] {
		t.Fatalf("want the deployer and the bridge to mount the same key of the same Secret, got %v", seen)
	}
	for _, s := range m.secrets {
		if s.Name != seen["deployer"].secret {
			continue
		}
		v, ok := s.StringData[seen["deployer"].key]
		if !ok {
			v = string(s.Data[seen["deployer"].key])
		}
		if raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(v)); err != nil || len(raw) != 32 {
			t.Errorf("Secret %s key %s: %d bytes (%v); want 32 bytes as base64, like head -c 32 /dev/urandom | base64", s.Name, seen["deployer"].key, len(raw), err)
		}
	}
}

func hasPort(pod corev1.PodSpec, target intstr.IntOrString) bool {
	for _, c := range pod.Containers {
		for _, p := range c.Ports {
			if (target.Type == intstr.String && p.Name == target.StrVal) || (target.Type == intstr.Int && p.ContainerPort == target.IntVal) {
				return true
			}
		}
	}
	return false
}

// checkWorkload checks one workload's pod: labels, images, security, probes
// and every reference to a Secret, volume or claim.
func checkWorkload(t *testing.T, m *manifests, w workload, images []string, used map[string]bool) map[string]bool {
	t.Helper()
	if w.serves && (w.selector == nil || !matches(w.selector.MatchLabels, w.pod.Labels)) {
		t.Errorf("%s: selector does not match its pod template's labels", w.where)
	}
	pod := w.pod.Spec
	if sc := pod.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.SeccompProfile == nil {
		t.Errorf("%s: pod securityContext must set runAsNonRoot: true and a seccompProfile", w.where)
	}
	volumes := map[string]bool{}
	for _, c := range w.claims {
		volumes[c] = true
	}
	for _, v := range pod.Volumes {
		volumes[v.Name] = true
		if v.PersistentVolumeClaim != nil && !slices.ContainsFunc(m.claims, func(c *corev1.PersistentVolumeClaim) bool { return c.Name == v.PersistentVolumeClaim.ClaimName }) {
			t.Errorf("%s: volume %s claims %q, which no PersistentVolumeClaim is", w.where, v.Name, v.PersistentVolumeClaim.ClaimName)
		}
		if v.Secret != nil {
			if _, ok := m.secretKeys(v.Secret.SecretName); !ok {
				t.Errorf("%s: volume %s names Secret %q, which does not exist", w.where, v.Name, v.Secret.SecretName)
			}
		}
	}
	for _, c := range pod.Containers {
		where := w.where + " container " + c.Name
		if !slices.Contains(images, c.Image) {
			t.Errorf("%s: image %q is not one make service-images builds (%v)", where, c.Image, images)
		}
		used[c.Image] = true
		if c.ImagePullPolicy != corev1.PullIfNotPresent && c.ImagePullPolicy != corev1.PullNever {
			t.Errorf("%s: imagePullPolicy %q; the images are built locally, never pulled", where, c.ImagePullPolicy)
		}
		sc := c.SecurityContext
		if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
			sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
			sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
			t.Errorf("%s: securityContext must refuse privilege escalation, make the root filesystem read-only and drop ALL capabilities", where)
		}
		for name, p := range map[string]*corev1.Probe{"readinessProbe": c.ReadinessProbe, "livenessProbe": c.LivenessProbe} {
			if !w.serves {
				break
			}
			if p == nil || p.HTTPGet == nil {
				t.Errorf("%s: no HTTP %s", where, name)
				continue
			}
			want := map[string]string{"readinessProbe": "/readyz", "livenessProbe": "/livez"}[name]
			if p.HTTPGet.Path != want || !hasPort(corev1.PodSpec{Containers: []corev1.Container{c}}, p.HTTPGet.Port) {
				t.Errorf("%s: %s GET %s on %s; want %s on a declared port", where, name, p.HTTPGet.Path, p.HTTPGet.Port.String(), want)
			}
		}
		defined := map[string]bool{}
		for _, e := range c.Env {
			for _, ref := range regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`).FindAllStringSubmatch(e.Value, -1) {
				if !defined[ref[1]] {
					t.Errorf("%s: env %s refers to $(%s), which is not defined before it", where, e.Name, ref[1])
				}
			}
			defined[e.Name] = true
			if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
				continue
			}
			ref := e.ValueFrom.SecretKeyRef
			keys, ok := m.secretKeys(ref.Name)
			if !ok || !keys[ref.Key] {
				t.Errorf("%s: env %s refers to key %q of Secret %q, which does not exist", where, e.Name, ref.Key, ref.Name)
			}
		}
		for _, vm := range c.VolumeMounts {
			if !volumes[vm.Name] {
				t.Errorf("%s: mounts volume %s, which the pod does not have", where, vm.Name)
			}
		}
	}
	return used
}
