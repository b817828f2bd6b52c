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
			var policies []networkingv1.NetworkPolicy
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
					var np networkingv1.NetworkPolicy
					strict(t, doc, &np)
					policies = append(policies, np)
					continue
				case "Ingress":
					obj = &networkingv1.Ingress{}
				default:
					t.Fatalf("unexpected kind %q", meta.Kind)
				}
				strict(t, doc, obj)
			}
			if kinds["Deployment"] != 4 || kinds["Service"] != 4 || kinds["PodDisruptionBudget"] != 4 || kinds["ConfigMap"] != 1 {
				t.Fatalf("rendered %v, want 4 Deployments, Services and PDBs and one ConfigMap", kinds)
			}
			checkServiceAccounts(t, deployments, kinds["ServiceAccount"])
			checkNetworkPolicies(t, policies)
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

// render runs helm template with the value set file and --set pairs; it returns the output,
// or helm's error output when it refuses.
func render(t *testing.T, helm, file string, set ...string) (string, error) {
	t.Helper()
	args := []string{"template", "rel", "portcullis"}
	if file != "" {
		args = append(args, "-f", file)
	}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	out, err := exec.Command(helm, args...).Output()
	if ee, ok := err.(*exec.ExitError); ok {
		return "", fmt.Errorf("%v: %s", err, ee.Stderr)
	}
	return string(out), err
}

// Each target runs under its own ServiceAccount, and only the signer's (the one Vault's
// Kubernetes auth role binds) mounts its token.
func checkServiceAccounts(t *testing.T, deployments []appsv1.Deployment, accounts int) {
	t.Helper()
	if accounts != 4 {
		t.Errorf("%d ServiceAccounts, want one per target", accounts)
	}
	seen := map[string]bool{}
	for _, d := range deployments {
		spec := d.Spec.Template.Spec
		target := d.Labels["app.kubernetes.io/component"]
		if want := "rel-portcullis-" + target; spec.ServiceAccountName != want {
			t.Errorf("%s runs as %q, want %q", d.Name, spec.ServiceAccountName, want)
		}
		seen[spec.ServiceAccountName] = true
		mounts := spec.AutomountServiceAccountToken != nil && *spec.AutomountServiceAccountToken
		if mounts != (target == "signer") {
			t.Errorf("%s mounts its ServiceAccount token: %v", d.Name, mounts)
		}
	}
	if len(seen) != len(deployments) {
		t.Errorf("targets share ServiceAccounts: %v", seen)
	}
}

// When NetworkPolicies are on, every target's egress is limited too, the gateway may call
// the three services, and the metrics port admits labelled scrapers only.
func checkNetworkPolicies(t *testing.T, policies []networkingv1.NetworkPolicy) {
	t.Helper()
	for _, np := range policies {
		target := np.Labels["app.kubernetes.io/component"]
		hasEgress := false
		for _, pt := range np.Spec.PolicyTypes {
			hasEgress = hasEgress || pt == networkingv1.PolicyTypeEgress
		}
		if !hasEgress {
			t.Errorf("%s: egress is not limited", np.Name)
		}
		if target == "gateway" {
			calls := map[string]bool{}
			for _, r := range np.Spec.Egress {
				for _, to := range r.To {
					if to.PodSelector != nil {
						calls[to.PodSelector.MatchLabels["app.kubernetes.io/component"]] = true
					}
				}
			}
			for _, svc := range []string{"authn", "authz", "signer"} {
				if !calls[svc] {
					t.Errorf("%s: the gateway may not call %s", np.Name, svc)
				}
			}
		}
		for _, r := range np.Spec.Ingress {
			for _, p := range r.Ports {
				if p.Port != nil && p.Port.IntValue() == 9090 &&
					(len(r.From) == 0 || r.From[0].PodSelector == nil || len(r.From[0].PodSelector.MatchLabels) == 0) {
					t.Errorf("%s: the metrics port is open to every pod", np.Name)
				}
			}
		}
	}
}

// An Ingress in front of the gateway gives every client the ingress controller's address: the
// chart refuses to render one unless gateway.trustedProxies names the controller, and says why.
func TestIngressNeedsTrustedProxies(t *testing.T) {
	helm := helmBin(t)
	_, err := render(t, helm, "", "ingress.enabled=true", "ingress.host=auth.example.com")
	if err == nil || !strings.Contains(err.Error(), "gateway.trustedProxies") || !strings.Contains(err.Error(), "lock") {
		t.Fatalf("an Ingress without trustedProxies: %v, want a refusal that says why", err)
	}
	out, err := render(t, helm, "", "ingress.enabled=true", "ingress.host=auth.example.com", "gateway.trustedProxies={10.42.0.0/16}")
	if err != nil {
		t.Fatal(err)
	}
	var ing networkingv1.Ingress
	for _, doc := range strings.Split(out, "\n---") {
		if strings.Contains(doc, "kind: Ingress") {
			strict(t, []byte(doc), &ing)
		}
	}
	if len(ing.Spec.Rules) != 1 || ing.Spec.Rules[0].Host != "auth.example.com" {
		t.Fatalf("Ingress: %+v", ing.Spec)
	}
	if b := ing.Spec.Rules[0].HTTP.Paths[0].Backend.Service; b == nil || b.Name != "rel-portcullis-gateway" || b.Port.Number != 5001 {
		t.Fatalf("Ingress backend: %+v", ing.Spec.Rules[0].HTTP.Paths[0].Backend)
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
