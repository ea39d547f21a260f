//go:build linux

package e2e

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/masqd/masqd/internal/testenv"
)

// capNetAdmin is CAP_NET_ADMIN's bit in /proc/PID/status masks.
const capNetAdmin = 1 << 12

// setprivAs returns the argv prefix that runs a command as nobody (65534) with exactly caps, e.g. "net_admin",
// in its permitted, effective, inheritable, ambient and bounding sets (none when caps is empty).
func setprivAs(caps ...string) []string {
	set := "-all"
	for _, c := range caps {
		set += ",+" + c
	}
	return []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
		"--inh-caps=" + set, "--ambient-caps=" + set, "--bounding-set=" + set}
}

// rootWithout is the argv prefix that runs a command as root with CAP_NET_ADMIN dropped from every set, as in
// a container that drops it.
var rootWithout = []string{"setpriv", "--inh-caps=-net_admin", "--ambient-caps=-all", "--bounding-set=-net_admin"}

// publicCopy copies the masqd binary and writes cfg into a directory that nobody can read and search (the
// test binary's own directories are 0700), and returns the binary's and the config's paths.
func publicCopy(t *testing.T, cfg string) (bin, path string) {
	t.Helper()
	dir := t.TempDir()
	for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(masqdBin)
	if err != nil {
		t.Fatal(err)
	}
	bin, path = filepath.Join(dir, "masqd"), filepath.Join(dir, "ip-masq-agent")
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return bin, path
}

// procStatus returns the value of field (e.g. "Uid", "CapEff") in /proc/PID/status.
func procStatus(t *testing.T, pid int, field string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return ""
}

// TestReliabilityPrivilegeNetAdminOnly: masqd --once, the agent (apply, drift repair through the nftables
// monitor, HTTP) and --cleanup all work as nobody with CAP_NET_ADMIN and no other capability. `ip netns exec`
// needs root for setns, so it runs setpriv, which drops everything else before masqd starts.
func TestReliabilityPrivilegeNetAdminOnly(t *testing.T) {
	testenv.RequireKernel(t)
	lab := newLab(t, labOptions{})
	bin, path := publicCopy(t, cfgVPCOnly)
	as := setprivAs("net_admin")

	r := runChild(t, lab.Node, time.Minute, append(as, bin, "--config="+path, "--once")...)
	if r.code != 0 {
		t.Fatalf("--once as nobody with CAP_NET_ADMIN: exit %d\n%s", r.code, r.stderr)
	}
	want := dryRun(t, path)
	if got := kernelTable(t, lab.Node); got != want {
		t.Fatalf("kernel:\n%s\nwant\n%s", got, want)
	}
	checkSources(t, lab, []expect{{lab.Internet, lab.NodeIP}, {lab.VPC, lab.PodIP}})

	w := watchCommits(t, lab.Node)
	a := startAgentAs(t, lab.Node, 9745, as, bin, "--config="+path)
	a.waitStatus("/readyz", http.StatusOK)
	pid := a.cmd.Process.Pid
	if uid := procStatus(t, pid, "Uid"); !strings.HasPrefix(uid, "65534") {
		t.Errorf("agent Uid: %s, want 65534", uid)
	}
	for _, f := range []string{"CapEff", "CapPrm", "CapBnd"} {
		if v := procStatus(t, pid, f); v != fmt.Sprintf("%016x", capNetAdmin) {
			t.Errorf("agent %s = %s, want CAP_NET_ADMIN only (%016x)", f, v, capNetAdmin)
		}
	}
	// The agent's start finds the table --once left, reads it (it is small) and sends nothing.
	if cs := w.drain(); len(cs) != 0 {
		t.Fatalf("commits on the agent's start, over the table --once left: %v; want none", cs)
	}
	lab.Node.Run(t, "nft", "delete", "element", "inet", "masqd", "nonmasq4", "{ 10.0.0.0/8 }")
	w.next(t, "tamper", 10*time.Second)
	if c := w.next(t, "repair", 10*time.Second); c.Process != "masqd" {
		t.Fatalf("repair commit %v, want masqd's", c)
	}
	if got := kernelTable(t, lab.Node); got != want {
		t.Fatalf("after repair:\n%s\nwant\n%s", got, want)
	}
	if strings.Contains(a.Logs(), "monitor failed") {
		t.Errorf("the nftables monitor failed with CAP_NET_ADMIN only:\n%s", a.Logs())
	}
	a.stop(syscall.SIGTERM)

	r = runChild(t, lab.Node, time.Minute, append(as, bin, "--cleanup")...)
	if r.code != 0 {
		t.Fatalf("--cleanup as nobody with CAP_NET_ADMIN: exit %d\n%s", r.code, r.stderr)
	}
	if out, err := lab.Node.RunErr("nft", "list", "table", "inet", "masqd"); err == nil {
		t.Fatalf("table still there after --cleanup:\n%s", out)
	}
	reportFigures(t, "privilege", "`masqd --once`, the agent (first apply, drift repair through the nftables monitor, HTTP) and `masqd --cleanup` all worked as uid 65534 with CAP_NET_ADMIN alone (`ip netns exec NS setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all,+net_admin --ambient-caps=-all,+net_admin --bounding-set=-all,+net_admin masqd …`; /proc showed CapEff = CapPrm = CapBnd = CAP_NET_ADMIN). `--dry-run` needs no privilege at all.\n")
}

// TestReliabilityPrivilegeWithout: without CAP_NET_ADMIN — as nobody with no capability, and as root with
// CAP_NET_ADMIN dropped — --once, --cleanup and the agent must fail, exit non-zero, and say that CAP_NET_ADMIN
// is missing, and the kernel must not change. --dry-run needs no privilege.
//
// It failed before RELIABILITY.md's findings 2 and 3, two ways: (1) the message was "masqd: nftables: get
// ruleset generation: netlink receive: operation not permitted", which does not name the capability; (2) the
// agent never exited: its nftables monitor failed to join the multicast group, re-subscribed every 100 ms and
// kicked a reconcile each time, which failed too. Now every EPERM names CAP_NET_ADMIN and the agent exits 1.
func TestReliabilityPrivilegeWithout(t *testing.T) {
	testenv.RequireKernel(t)
	lab := newLab(t, labOptions{})
	bin, path := publicCopy(t, cfgVPCOnly)
	mustMasqd(t, lab.Node, "--config="+path, "--once")
	before := lab.Node.Run(t, "nft", "list", "ruleset")

	if r := runChild(t, lab.Node, time.Minute, append(setprivAs(), bin, "--config="+path, "--dry-run")...); r.code != 0 || r.stdout != dryRun(t, path) {
		t.Errorf("--dry-run with no capability: exit %d\n%s", r.code, r.stderr)
	}
	for _, who := range []struct {
		name   string
		prefix []string
	}{{"nobody, no capabilities", setprivAs()}, {"root without CAP_NET_ADMIN", rootWithout}} {
		t.Run(strings.ReplaceAll(who.name, " ", "-"), func(t *testing.T) {
			for _, mode := range []string{"--once", "--cleanup"} {
				r := runChild(t, lab.Node, time.Minute, append(slices.Clone(who.prefix), bin, "--config="+path, mode)...)
				if r.code == 0 {
					t.Errorf("%s as %s: exit 0", mode, who.name)
				}
				if !strings.Contains(r.stderr, "CAP_NET_ADMIN") || !strings.Contains(r.stderr, "not permitted") {
					t.Errorf("%s as %s: stderr %q, want it to say the operation was not permitted and that masqd needs CAP_NET_ADMIN",
						mode, who.name, strings.TrimSpace(r.stderr))
				}
			}
			a := startAgentAs(t, lab.Node, 9746, who.prefix, bin, "--config="+path, "--log-level=info")
			select {
			case <-a.exited:
				if a.cmd.ProcessState.ExitCode() == 0 {
					t.Errorf("agent as %s exited 0", who.name)
				}
				if !strings.Contains(a.Logs(), "CAP_NET_ADMIN") {
					t.Errorf("agent as %s: output does not name CAP_NET_ADMIN:\n%s", who.name, clipText(a.Logs(), 2000))
				}
			case <-time.After(10 * time.Second):
				lines := strings.Count(a.Logs(), "\n")
				t.Errorf("agent as %s still running after 10 s, %d log lines so far; want it to exit non-zero saying CAP_NET_ADMIN is missing. Last lines:\n%s",
					who.name, lines, lastLines(a.Logs(), 4))
			}
		})
	}
	if after := lab.Node.Run(t, "nft", "list", "ruleset"); after != before {
		t.Errorf("kernel changed:\n%s\nwas\n%s", after, before)
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// TestReliabilityHTTPReadOnly: the agent's HTTP server answers GET on /healthz, /readyz and /metrics, refuses
// every other method there (405), knows no other path (404), and listens on loopback only by default.
func TestReliabilityHTTPReadOnly(t *testing.T) {
	testenv.RequireKernel(t)
	lab := newLab(t, labOptions{})
	a := startAgent(t, lab.Node, 9745, "--config="+writeConfig(t, cfgVPCOnly))
	a.waitStatus("/readyz", http.StatusOK)
	do := func(method, path string) int {
		t.Helper()
		req, err := http.NewRequest(method, "http://"+a.addr+path, strings.NewReader("x=1"))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := a.client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	checked := 0
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		if code := do(http.MethodGet, path); code != http.StatusOK {
			t.Errorf("GET %s: %d", path, code)
		}
		for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodOptions, "TRACE", "CONNECT"} {
			checked++
			if code := do(m, path); code != http.StatusMethodNotAllowed {
				t.Errorf("%s %s: %d, want 405", m, path, code)
			}
		}
	}
	for _, path := range []string{"/", "/debug/pprof/", "/debug/pprof/cmdline", "/debug/vars", "/config", "/reload",
		"/quitquitquit", "/admin", "/metrics/x", "/healthz/x", "/readyz/verbose", "/../etc/passwd"} {
		for _, m := range []string{http.MethodGet, http.MethodPost} {
			checked++
			if code := do(m, path); code != http.StatusNotFound {
				t.Errorf("%s %s: %d, want 404", m, path, code)
			}
		}
	}

	// The default address: loopback only.
	cmd := exec.Command("ip", "netns", "exec", lab.Node.Name, masqdBin, "--config="+writeConfig(t, cfgVPCOnly))
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }()
	waitFor(t, 10*time.Second, "the default HTTP listener", func() error {
		out := lab.Node.Run(t, "ss", "-Hltn", "sport = :9745")
		if strings.TrimSpace(out) == "" {
			return fmt.Errorf("nothing listens on 9745 yet")
		}
		if f := strings.Fields(out); len(f) < 4 || f[3] != "127.0.0.1:9745" {
			return fmt.Errorf("listening on %q, want 127.0.0.1:9745 only", out)
		}
		return nil
	})
	reportFigures(t, "http", fmt.Sprintf("HTTP: GET /healthz, /readyz and /metrics answer 200; %d other requests (POST, PUT, DELETE, PATCH, OPTIONS, TRACE, CONNECT on those paths; GET and POST on /, /debug/pprof/, /debug/vars, /config, /reload and others) got 405 (those paths) or 404 (the others), exactly; with no `--http-address` the agent listens on 127.0.0.1:9745 only.\n", checked))
}

// manifestObject is one Kubernetes object, decoded loosely.
type manifestObject map[string]any

func (o manifestObject) str(path ...string) string {
	v := o.get(path...)
	s, _ := v.(string)
	return s
}

func (o manifestObject) get(path ...string) any {
	var cur any = map[string]any(o)
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[p]
	}
	return cur
}

func yamlList(v any) []any { l, _ := v.([]any); return l }

func yamlStrings(v any) []string {
	var out []string
	for _, x := range yamlList(v) {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

// renderKustomization returns the objects of `kubectl kustomize dir`, with the kubectl the Kubernetes e2e
// tests use (kubeTools: pinned, built once and cached), never one that happens to be on PATH.
func renderKustomization(t *testing.T, dir string) []manifestObject {
	t.Helper()
	kubectl := kubeTools(t).Kubectl
	out, err := exec.Command(kubectl, "kustomize", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("%s kustomize %s: %v\n%s", kubectl, dir, err, out)
	}
	dec := yaml.NewDecoder(bytes.NewReader(out))
	var objs []manifestObject
	for {
		var o map[string]any // not manifestObject: yaml.v3 would make every nested mapping one
		if err := dec.Decode(&o); err != nil {
			break
		}
		if o != nil {
			objs = append(objs, manifestObject(o))
		}
	}
	return objs
}

// manifestProblems checks issue 7's least-privilege rules on rendered objects and returns what breaks them.
func manifestProblems(objs []manifestObject) []string {
	var problems []string
	errorf := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	daemonSets := 0
	for _, o := range objs {
		kind, name := o.str("kind"), o.str("metadata", "name")
		switch kind {
		case "DaemonSet":
			daemonSets++
			podSpec, _ := o.get("spec", "template", "spec").(map[string]any)
			spec := manifestObject(podSpec)
			if spec.get("hostPID") == true || spec.get("hostIPC") == true {
				errorf("DaemonSet %s: hostPID or hostIPC", name)
			}
			containers := append(yamlList(spec.get("containers")), yamlList(spec.get("initContainers"))...)
			if len(containers) == 0 {
				errorf("DaemonSet %s: no containers", name)
			}
			for _, c := range containers {
				cm, _ := c.(map[string]any)
				c := manifestObject(cm)
				where := fmt.Sprintf("DaemonSet %s container %s", name, c.str("name"))
				sc := manifestObject{}
				if m, ok := c.get("securityContext").(map[string]any); ok {
					sc = m
				}
				if sc.get("privileged") == true {
					errorf("%s: privileged", where)
				}
				if sc.get("allowPrivilegeEscalation") == true {
					errorf("%s: allowPrivilegeEscalation", where)
				}
				if sc.get("readOnlyRootFilesystem") != true {
					errorf("%s: readOnlyRootFilesystem is not true", where)
				}
				if drop := yamlStrings(sc.get("capabilities", "drop")); !slices.Contains(drop, "ALL") {
					errorf("%s: capabilities.drop %v, want ALL", where, drop)
				}
				if add := yamlStrings(sc.get("capabilities", "add")); !slices.Equal(add, []string{"NET_ADMIN"}) {
					errorf("%s: capabilities.add %v, want [NET_ADMIN] only", where, add)
				}
			}
		case "ClusterRoleBinding":
			// Only the node-name and discover-pod-cidrs overlays': read Nodes, which are cluster-scoped (checked
			// with the ClusterRole).
			if ref := o.str("roleRef", "name"); ref != "masqd-nodes" {
				errorf("ClusterRoleBinding %s: masqd needs no cluster-wide permission but reading Nodes (ClusterRole masqd-nodes), not %q", name, ref)
			}
		case "Role", "ClusterRole":
			for i, r := range yamlList(o.get("rules")) {
				rm, _ := r.(map[string]any)
				rule := manifestObject(rm)
				where := fmt.Sprintf("%s %s rule %d", kind, name, i)
				res, verbs := yamlStrings(rule.get("resources")), yamlStrings(rule.get("verbs"))
				for _, g := range yamlStrings(rule.get("apiGroups")) {
					if g != "" && g != "events.k8s.io" {
						errorf("%s: apiGroup %q", where, g)
					}
				}
				for _, rs := range res {
					switch rs {
					case "configmaps":
						if names := yamlStrings(rule.get("resourceNames")); len(names) == 0 {
							errorf("%s: configmaps without resourceNames: every ConfigMap is readable", where)
						}
						for _, v := range verbs {
							if !slices.Contains([]string{"get", "list", "watch"}, v) {
								errorf("%s: verb %q on configmaps", where, v)
							}
						}
					case "events":
						for _, v := range verbs {
							if !slices.Contains([]string{"create", "patch", "update"}, v) {
								errorf("%s: verb %q on events", where, v)
							}
						}
					case "nodes": // --node-name: its Node's pod ranges; read only
						for _, v := range verbs {
							if !slices.Contains([]string{"get", "list", "watch"}, v) {
								errorf("%s: verb %q on nodes", where, v)
							}
						}
					default:
						errorf("%s: resource %q; masqd needs only its ConfigMap and events", where, rs)
					}
				}
				if len(yamlList(rule.get("nonResourceURLs"))) > 0 {
					errorf("%s: nonResourceURLs", where)
				}
			}
		}
	}
	for _, o := range objs {
		if o.str("kind") == "ClusterRole" && o.str("metadata", "name") == "masqd-nodes" {
			for _, r := range yamlList(o.get("rules")) {
				rm, _ := r.(map[string]any)
				if res := yamlStrings(manifestObject(rm).get("resources")); !slices.Equal(res, []string{"nodes"}) {
					errorf("ClusterRole masqd-nodes: resources %v, want only nodes", res)
				}
			}
		}
	}
	if daemonSets == 0 {
		errorf("no DaemonSet in the manifests")
	}
	return problems
}

// TestReliabilityPrivilegeManifests renders deploy/kubernetes (the kustomize base) and its gke overlay and
// checks least privilege: not privileged, capabilities drop ALL and add only NET_ADMIN, a read-only root
// filesystem, and RBAC limited to the named ConfigMap and events.
func TestReliabilityPrivilegeManifests(t *testing.T) {
	var done []string
	for _, dir := range []string{"../deploy/kubernetes", "../deploy/kubernetes/gke", "../deploy/kubernetes/node-name", "../deploy/kubernetes/discover-pod-cidrs"} {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			if _, err := os.Stat(filepath.Join(dir, "kustomization.yaml")); err != nil {
				t.Fatalf("the manifests to check are missing: %v", err)
			}
			objs := renderKustomization(t, dir)
			for _, p := range manifestProblems(objs) {
				t.Error(p)
			}
			var limits []string
			for _, o := range objs {
				for _, c := range yamlList(o.get("spec", "template", "spec", "containers")) {
					cm, _ := c.(map[string]any)
					if l := manifestObject(cm).str("resources", "limits", "memory"); l != "" {
						limits = append(limits, l)
					}
				}
			}
			done = append(done, fmt.Sprintf("`%s` (%d objects, memory limit %s)", strings.TrimPrefix(dir, "../"), len(objs), strings.Join(limits, ", ")))
		})
	}
	if len(done) > 0 {
		reportFigures(t, "manifests", fmt.Sprintf("Manifests rendered with `kubectl kustomize`: %s. Every container: not privileged, no privilege escalation, capabilities drop ALL and add only NET_ADMIN, read-only root filesystem; no hostPID or hostIPC; RBAC: no ClusterRoleBinding but the node-name and discover-pod-cidrs overlays' (nodes get/list/watch), ConfigMaps only with resourceNames and get/list/watch, events create/patch/update, nothing else.\n", strings.Join(done, "; ")))
	}
}

// TestReliabilityManifestRules checks that manifestProblems catches what it is for, on a bad DaemonSet and Role.
func TestReliabilityManifestRules(t *testing.T) {
	bad := `apiVersion: apps/v1
kind: DaemonSet
metadata: {name: bad}
spec:
  template:
    spec:
      hostPID: true
      containers:
      - name: masqd
        securityContext:
          privileged: true
          capabilities: {add: [NET_ADMIN, SYS_ADMIN]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: bad}
rules:
- apiGroups: [""]
  resources: [configmaps, secrets]
  verbs: [get, update]
---
kind: ClusterRoleBinding
metadata: {name: bad}
`
	var objs []manifestObject
	for _, doc := range strings.Split(bad, "---\n") {
		var o map[string]any
		if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
			t.Fatal(err)
		}
		objs = append(objs, manifestObject(o))
	}
	got := strings.Join(manifestProblems(objs), "\n")
	for _, want := range []string{"hostPID", "privileged", "readOnlyRootFilesystem", "drop [], want ALL",
		"add [NET_ADMIN SYS_ADMIN]", "configmaps without resourceNames", `verb "update" on configmaps`,
		`resource "secrets"`, "ClusterRoleBinding bad"} {
		if !strings.Contains(got, want) {
			t.Errorf("problems do not mention %q:\n%s", want, got)
		}
	}
}
