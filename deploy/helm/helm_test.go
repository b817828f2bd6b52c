// Package helm_test renders deploy/helm/portcullis with the real helm (built by
// scripts/install-tools.sh into .cache/bin) for several value sets, and checks every rendered
// object by strict decoding into the Kubernetes API types (an unknown or misspelt field fails),
// and the rendered Portcullis configuration with `portcullis -verify-config`.
package helm_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"
)

// helmBin is the pinned helm the install script builds; a machine without it fails the test.
func helmBin(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs("../../.cache/bin/helm")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("helm not found at %s: run scripts/install-tools.sh go", p)
	}
	return p
}

// portcullisBin builds the binary once per test run, to check the rendered configuration.
func portcullisBin(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "portcullis")
	out, err := exec.Command("go", "build", "-o", bin, "../../cmd/portcullis").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func TestChartRendersValidObjects(t *testing.T) {
	helm, bin := helmBin(t), portcullisBin(t)
	sets, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(sets) == 0 {
		t.Fatalf("no value sets: %v", err)
	}
	for _, set := range sets {
		t.Run(strings.TrimSuffix(filepath.Base(set), ".yaml"), func(t *testing.T) {
			out, err := exec.Command(helm, "template", "rel", "portcullis", "-f", set).Output()
			if err != nil {
				var stderr []byte
				if ee, ok := err.(*exec.ExitError); ok {
					stderr = ee.Stderr
				}
				t.Fatalf("helm template: %v\n%s", err, stderr)
			}
			kinds := map[string]int{}
			var deployments []appsv1.Deployment
			for _, doc := range bytes.Split(out, []byte("\n---")) {
				if len(bytes.TrimSpace(stripComments(doc))) == 0 {
					continue
				}
				var meta struct{ Kind string }
				if err := yaml.Unmarshal(doc, &meta); err != nil {
					t.Fatalf("not YAML: %v\n%s", err, doc)
				}
				kinds[meta.Kind]++
				var obj any
				switch meta.Kind {
				case "Deployment":
					var d appsv1.Deployment
					strict(t, doc, &d)
					deployments = append(deployments, d)
					continue
				case "Service":
					obj = &corev1.Service{}
				case "ConfigMap":
					var cm corev1.ConfigMap
					strict(t, doc, &cm)
					verifyConfig(t, bin, cm.Data["portcullis.yaml"])
					continue
				case "ServiceAccount":
					obj = &corev1.ServiceAccount{}
				case "HorizontalPodAutoscaler":
					obj = &autoscalingv2.HorizontalPodAutoscaler{}
				case "PodDisruptionBudget":
					obj = &policyv1.PodDisruptionBudget{}
				case "NetworkPolicy":
					obj = &networkingv1.NetworkPolicy{}
				default:
					t.Fatalf("unexpected kind %q", meta.Kind)
				}
				strict(t, doc, obj)
			}
			if kinds["Deployment"] != 4 || kinds["Service"] != 4 || kinds["PodDisruptionBudget"] != 4 || kinds["ConfigMap"] != 1 {
				t.Fatalf("rendered %v, want 4 Deployments, Services and PDBs and one ConfigMap", kinds)
			}
			for _, d := range deployments {
				c := d.Spec.Template.Spec.Containers[0]
				if c.ReadinessProbe == nil || c.LivenessProbe == nil {
					t.Errorf("%s: no readiness or liveness probe", d.Name)
				}
				if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
					t.Errorf("%s: root filesystem not read-only", d.Name)
				}
			}
		})
	}
}

// strict decodes doc into obj, refusing fields the API type does not have.
func strict(t *testing.T, doc []byte, obj any) {
	t.Helper()
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		t.Fatalf("%T: %v\n%s", obj, err, doc)
	}
}

func stripComments(doc []byte) []byte {
	var b bytes.Buffer
	for _, l := range bytes.Split(doc, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(l), []byte("#")) {
			b.Write(l)
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

// verifyConfig runs `portcullis -verify-config` on the rendered configuration.
func verifyConfig(t *testing.T, bin, cfg string) {
	t.Helper()
	// The policy ConfigMap is mounted at /etc/portcullis/policy in the pod; here the shipped
	// default policy stands in for it, since Validate reads the policy directory.
	policy, err := filepath.Abs("../policies/default")
	if err != nil {
		t.Fatal(err)
	}
	cfg = strings.ReplaceAll(cfg, "dir: /etc/portcullis/policy}", "dir: "+policy+"}")
	path := filepath.Join(t.TempDir(), "portcullis.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "-verify-config", "-config", path).CombinedOutput()
	if err != nil {
		t.Fatalf("rendered configuration refused: %v\n%s\n%s", err, out, numbered(cfg))
	}
}

func numbered(s string) string {
	var b strings.Builder
	for i, l := range strings.Split(s, "\n") {
		fmt.Fprintf(&b, "%3d %s\n", i+1, l)
	}
	return b.String()
}

// TestChartAllowAnonymous: authn.allowAnonymous reaches the config every target reads (the
// gateway enforces it), true unless set false.
func TestChartAllowAnonymous(t *testing.T) {
	helm := helmBin(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "allow_anonymous: true"},
		{[]string{"--set", "authn.allowAnonymous=false"}, "allow_anonymous: false"},
	} {
		out, err := exec.Command(helm, append([]string{"template", "rel", "portcullis"}, tc.args...)...).Output()
		if err != nil {
			t.Fatalf("helm template %v: %v", tc.args, err)
		}
		if !strings.Contains(string(out), tc.want) {
			t.Errorf("helm template %v: no %q in the config", tc.args, tc.want)
		}
	}
}
