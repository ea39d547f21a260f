//go:build linux

package e2e

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/masqd/masqd/internal/testenv"
)

// hostileMaxSend is the largest input the test tries to put in a ConfigMap. The apiserver refuses a request
// body over 3 MiB and a ConfigMap over 1 MiB; the 100 MB input is not worth sending to hear that again.
const hostileMaxSend = 16 << 20

// hostileEventsChecked is how many of the first inputs also have their Warning Event checked. client-go's
// event recorder lets about 25 Events per object through in a burst and then one per 5 minutes, and combines
// the eleventh similar Event onwards into one: past that, the log line is the record.
const hostileEventsChecked = 5

// TestReliabilityHostileConfigMap is TestReliabilityHostileAgent through the Kubernetes API: the agent watches
// kube-system/ip-masq-agent (as the DaemonSet's ServiceAccount, with the RBAC of deploy/kubernetes) and every
// hostile input that is file content is put into the ConfigMap's `config` key in turn, with the good config
// back in between. The apiserver may refuse an input (too large): then masqd never sees it, and that is
// recorded. Every input it accepts must arrive unaltered and be rejected by masqd with its error, naming the
// ConfigMap, in the log (and, for the first ones, as a Warning Event), with the kernel unchanged, the agent up,
// healthy and ready, and its peak RSS under the DaemonSet's memory limit.
func TestReliabilityHostileConfigMap(t *testing.T) {
	testenv.RequireKernel(t)
	memLimit := daemonSetGOMEMLIMIT(t)
	t.Setenv("GOMEMLIMIT", memLimit) // as the DaemonSet sets it; the agent inherits the environment
	t.Setenv("NODE_NAME", "e2e-node")
	lab, cp := kubeLab(t)
	token := deployRBAC(t, cp)

	ctx := context.Background()
	// Protobuf, as masqd itself speaks: a string's bytes travel as they are, invalid UTF-8 included.
	cms := cp.clientAs(cp.adminToken, "application/vnd.kubernetes.protobuf").CoreV1().ConfigMaps(cmNamespace)
	cm, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: cmName},
		Data: map[string]string{"config": cfgVPCOnly}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	file := writeConfig(t, cfgVPCOnly)
	a := startAgent(t, lab.Node, freePort(t, lab.Node), "--kubeconfig="+cp.WriteKubeconfig("masqd", token),
		"--config="+file, "--log-level=info")
	waitKernel(t, lab, "the ConfigMap's config", dryRun(t, file))
	a.waitStatus("/readyz", http.StatusOK)
	w := watchCommits(t, lab.Node)
	before := lab.Node.Run(t, "nft", "list", "ruleset")

	reloads := func() float64 { return a.metric("masqd_config_reloads_total") }
	put := func(content string) error {
		cur, err := cms.Get(ctx, cmName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		cur.Data = map[string]string{"config": content}
		cm, err = cms.Update(ctx, cur, metav1.UpdateOptions{})
		return err
	}
	var (
		sent, refused, notContent, tooBig, events int
		refusals                                  = map[string][]string{} // the apiserver's reason → inputs
		largest                                   int
	)
	for _, in := range hostileInputs(t) {
		st, err := os.Stat(in.path)
		switch {
		case err != nil || !st.Mode().IsRegular():
			notContent++ // a device, a FIFO, a symlink loop, a directory: a ConfigMap holds strings only
			continue
		case st.Size() > hostileMaxSend:
			tooBig++
			continue
		}
		content, err := os.ReadFile(in.path)
		if err != nil {
			t.Fatal(err)
		}
		r0, logged0 := reloads(), len(agentConfigErrors(t, a))
		if err := put(string(content)); err != nil {
			// Only size may stop an input at the apiserver.
			reason := "request over 3 MiB (413 Request Entity Too Large)"
			switch {
			case apierrors.IsRequestEntityTooLargeError(err):
			case apierrors.IsInvalid(err) && strings.Contains(err.Error(), "1048576 bytes"):
				reason = "ConfigMap over 1 MiB (`" + err.Error() + "`)"
			default:
				t.Errorf("%s (%d bytes): the apiserver refused it for another reason than size: %v", in.name, len(content), err)
				reason = err.Error()
			}
			refused++
			refusals[reason] = append(refusals[reason], fmt.Sprintf("%s (%d bytes)", in.name, len(content)))
			continue
		}
		sent++
		largest = max(largest, len(content))
		if got := cm.Data["config"]; got != string(content) {
			t.Errorf("%s: the ConfigMap holds %d bytes that differ from the %d sent", in.name, len(got), len(content))
		}
		msg := waitRejected(t, a, in.name, r0, logged0)
		checkHostileOutput(t, in, msg)
		if !strings.Contains(msg, "configmap "+cmNamespace+"/"+cmName+" key config") {
			t.Errorf("%s: the error does not name the ConfigMap and key: %s", in.name, clipText(msg, 300))
		}
		if events < hostileEventsChecked {
			events++
			e := waitEvent(t, cp.Admin, corev1.EventTypeWarning, "InvalidConfig", in.want)
			if len(e.Message) > 1024 {
				t.Errorf("%s: Event message of %d bytes", in.name, len(e.Message))
			}
		}
		restoreGood(t, a, in.name, func() {
			if err := put(cfgVPCOnly); err != nil {
				t.Fatal(err)
			}
		})
	}
	rss := checkSurvived(t, lab, a, w, before, "the ConfigMap")
	if sent < 50 {
		t.Errorf("only %d hostile inputs went through the ConfigMap; the issue asks for at least 50", sent)
	}
	// And a good edit still lands.
	if err := put(cfgWithNetDocs); err != nil {
		t.Fatal(err)
	}
	waitKernel(t, lab, "a good config after the hostile ones", dryRun(t, writeConfig(t, cfgWithNetDocs)))

	var b strings.Builder
	fmt.Fprintf(&b, "The agent watched `kube-system/ip-masq-agent` through a real kube-apiserver (as the DaemonSet's ServiceAccount, with the RBAC of `deploy/kubernetes`, GOMEMLIMIT=%s) while the hostile inputs that are file content were written one by one into the ConfigMap's `config` key (protobuf, so that bytes such as invalid UTF-8 arrive as they are), the good config restored in between. **%d went through**, up to %d bytes, each stored unaltered: every one was logged with its error, naming `configmap kube-system/ip-masq-agent key config`, `masqd_config_valid` went to 0 and back to 1, the agent stayed alive, healthy and ready, made no commit, and `nft list ruleset` was unchanged; the first %d also gave a Warning `InvalidConfig` Event with the error (client-go's recorder then rate-limits and combines Events per object, so the log line is the record). Peak RSS (VmHWM): **%s** (bound: the DaemonSet's memory limit, %s). A good edit then reached the kernel.\n\n",
		memLimit, sent, largest, hostileEventsChecked, inMiB(rss), inMiB(agentRSSBound))
	fmt.Fprintf(&b, "What cannot go through a ConfigMap, and why:\n\n")
	for _, reason := range slices.Sorted(maps.Keys(refusals)) {
		fmt.Fprintf(&b, "- refused by the apiserver, %s: %s — masqd never sees it\n", reason, strings.Join(refusals[reason], "; "))
	}
	if tooBig > 0 {
		fmt.Fprintf(&b, "- %d input(s) over %d MiB not sent at all: the apiserver refuses any request over 3 MiB\n", tooBig, hostileMaxSend>>20)
	}
	fmt.Fprintf(&b, "- %d input(s) that are not file content (/dev/zero, a FIFO, a symlink loop, directories): a ConfigMap holds strings, and masqd reads one key, so they cannot be expressed\n", notContent)
	reportFigures(t, "hostile-configmap", b.String())
}
