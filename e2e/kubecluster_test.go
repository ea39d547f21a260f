//go:build linux

package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// controlPlane is etcd and kube-apiserver running inside a lab namespace (the node's), listening on its
// loopback only. The test process reaches them by dialling from inside that namespace.
type controlPlane struct {
	t    testing.TB
	ns   *NS
	bins kubeBins
	dir  string

	server     string // https://127.0.0.1:PORT
	apiArgs    []string
	api        *daemon
	caPEM      []byte
	adminToken string
	// Admin is a client with system:masters; AdminKubeconfig is the same as a kubeconfig file, for kubectl.
	Admin           kubernetes.Interface
	AdminKubeconfig string
}

// serviceCIDR is the control plane's Service range; the apiserver's certificate names its first address.
const serviceCIDR = "10.96.0.0/16"

// startControlPlane starts etcd and kube-apiserver in ns, with RBAC on, a static token for an admin and a
// key pair for ServiceAccount tokens. advertise is a non-loopback address of ns: kube-apiserver refuses to
// start without one. Both stop when the test ends.
func startControlPlane(t testing.TB, ns *NS, bins kubeBins, advertise string) *controlPlane {
	t.Helper()
	cp := &controlPlane{t: t, ns: ns, bins: bins, dir: t.TempDir()}
	cp.writeCredentials(advertise)

	clientPort, peerPort, apiPort := freePort(t, ns), freePort(t, ns), freePort(t, ns)
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", clientPort)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peerPort)
	etcd := startDaemon(t, ns, "etcd", filepath.Join(cp.dir, "etcd.log"), bins.Etcd,
		"--name=e2e", "--data-dir="+filepath.Join(cp.dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL, "--initial-cluster=e2e="+peerURL,
		"--unsafe-no-fsync", "--log-level=warn")
	t.Cleanup(func() { etcd.stop(syscall.SIGTERM) })
	httpc := nsHTTPClient(ns)
	waitFor(t, 30*time.Second, "etcd healthy", func() error {
		if err := etcd.exitErr(); err != nil {
			return err
		}
		resp, err := httpc.Get(etcdURL + "/health")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		if !strings.Contains(b.String(), `"health":"true"`) {
			return fmt.Errorf("etcd /health: %s", b.String())
		}
		return nil
	})

	cp.server = fmt.Sprintf("https://127.0.0.1:%d", apiPort)
	cp.apiArgs = []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", apiPort), "--advertise-address=" + advertise,
		"--tls-cert-file=" + filepath.Join(cp.dir, "apiserver.crt"),
		"--tls-private-key-file=" + filepath.Join(cp.dir, "apiserver.key"),
		"--token-auth-file=" + filepath.Join(cp.dir, "tokens.csv"),
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + filepath.Join(cp.dir, "sa.pub"),
		"--service-account-signing-key-file=" + filepath.Join(cp.dir, "sa.key"),
		"--service-cluster-ip-range=" + serviceCIDR,
		"--cert-dir=" + filepath.Join(cp.dir, "certs"),
		"--profiling=false",
	}
	cp.Admin = cp.client(cp.adminToken)
	cp.AdminKubeconfig = cp.WriteKubeconfig("admin", cp.adminToken)
	cp.StartAPIServer()
	t.Cleanup(func() { cp.api.stop(syscall.SIGTERM) })
	waitFor(t, 30*time.Second, "namespace kube-system", func() error {
		_, err := cp.Admin.CoreV1().Namespaces().Get(context.Background(), "kube-system", metav1.GetOptions{})
		return err
	})
	return cp
}

// StartAPIServer starts kube-apiserver, with the same flags every time, and waits until it is ready.
func (cp *controlPlane) StartAPIServer() {
	cp.t.Helper()
	cp.api = startDaemon(cp.t, cp.ns, "kube-apiserver", filepath.Join(cp.dir, "kube-apiserver.log"), cp.bins.APIServer, cp.apiArgs...)
	cp.WaitAPIServer()
}

// WaitAPIServer waits until kube-apiserver answers /readyz.
func (cp *controlPlane) WaitAPIServer() {
	cp.t.Helper()
	waitFor(cp.t, 90*time.Second, "kube-apiserver ready", func() error {
		if err := cp.api.exitErr(); err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		body, err := cp.Admin.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err != nil {
			return fmt.Errorf("%w: %s", err, body)
		}
		return nil
	})
}

// KillAPIServer kills kube-apiserver (SIGKILL: no graceful close of the watches) and waits for it to exit.
func (cp *controlPlane) KillAPIServer() { cp.api.stop(syscall.SIGKILL) }

// client returns a client that authenticates with token.
func (cp *controlPlane) client(token string) kubernetes.Interface {
	cp.t.Helper()
	return cp.clientAs(token, "")
}

// clientAs is client with a content type for requests ("" for JSON, or application/vnd.kubernetes.protobuf,
// which carries a string's bytes as they are).
func (cp *controlPlane) clientAs(token, contentType string) kubernetes.Interface {
	cp.t.Helper()
	cfg := &rest.Config{
		ContentConfig:   rest.ContentConfig{ContentType: contentType},
		Host:            cp.server,
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{CAData: cp.caPEM},
		Dial:            nsDialer(cp.ns),
		Timeout:         10 * time.Second,
		QPS:             -1, // no client-side rate limit: the latency test edits back to back
	}
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		cp.t.Fatal(err)
	}
	return c
}

// ServiceAccountToken mints a token for a ServiceAccount with the TokenRequest API, as the kubelet does for
// a pod.
func (cp *controlPlane) ServiceAccountToken(namespace, name string) string {
	cp.t.Helper()
	exp := int64(3600)
	tr, err := cp.Admin.CoreV1().ServiceAccounts(namespace).CreateToken(context.Background(), name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if err != nil {
		cp.t.Fatalf("TokenRequest for %s/%s: %v", namespace, name, err)
	}
	return tr.Status.Token
}

// WriteKubeconfig writes a kubeconfig for the control plane that authenticates with token, and returns its path.
func (cp *controlPlane) WriteKubeconfig(user, token string) string {
	cp.t.Helper()
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["e2e"] = &clientcmdapi.Cluster{Server: cp.server, CertificateAuthorityData: cp.caPEM}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["e2e"] = &clientcmdapi.Context{Cluster: "e2e", AuthInfo: user}
	cfg.CurrentContext = "e2e"
	path := filepath.Join(cp.dir, user+".kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		cp.t.Fatal(err)
	}
	return path
}

// Kubectl runs kubectl as the admin inside the control plane's namespace.
func (cp *controlPlane) Kubectl(args ...string) (string, error) {
	return cp.ns.RunErr(append([]string{cp.bins.Kubectl, "--kubeconfig=" + cp.AdminKubeconfig}, args...)...)
}

// Logs returns the last lines of kube-apiserver's and etcd's logs, for a failing test.
func (cp *controlPlane) Logs() string {
	var b strings.Builder
	for _, name := range []string{"etcd.log", "kube-apiserver.log"} {
		data, _ := os.ReadFile(filepath.Join(cp.dir, name))
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		fmt.Fprintf(&b, "--- %s (last 40 lines)\n%s\n", name, strings.Join(lines[max(0, len(lines)-40):], "\n"))
	}
	return b.String()
}

// writeCredentials makes a CA and a serving certificate for the apiserver (loopback, advertise, the first
// Service address and the kubernetes Service's names), a key pair for ServiceAccount tokens, and a static
// token for an admin in system:masters.
func (cp *controlPlane) writeCredentials(advertise string) {
	t := cp.t
	t.Helper()
	caKey := newKey(t)
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "masqd-e2e-ca"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true, IsCA: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	cp.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})

	srvKey := newKey(t)
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "kube-apiserver"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP(advertise), net.ParseIP("10.96.0.1")},
		DNSNames:    []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, ca, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	saKey := newKey(t)
	saPub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	tok := make([]byte, 16)
	rand.Read(tok)
	cp.adminToken = hex.EncodeToString(tok)

	files := map[string][]byte{
		"ca.crt":        cp.caPEM,
		"apiserver.crt": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srvDER}),
		"apiserver.key": pemKey(t, srvKey),
		"sa.key":        pemKey(t, saKey),
		"sa.pub":        pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: saPub}),
		"tokens.csv":    []byte(cp.adminToken + `,admin,admin-uid,"system:masters"` + "\n"),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(cp.dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func pemKey(t testing.TB, k *ecdsa.PrivateKey) []byte {
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
}

// freePort returns a TCP port free on ns's loopback (the kernel's choice, released at once).
func freePort(t testing.TB, ns *NS) int {
	t.Helper()
	var port int
	err := ns.Do(func() error {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		port = ln.Addr().(*net.TCPAddr).Port
		return ln.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// nsDialer dials from inside ns: the connection's socket belongs to ns for its whole life.
func nsDialer(ns *NS) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := ns.Do(func() error {
			var err error
			c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
}

// nsHTTPClient is a plain HTTP client whose connections are made inside ns.
func nsHTTPClient(ns *NS) *http.Client {
	return &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, DialContext: nsDialer(ns)}}
}

// daemon is a long-running process inside a namespace: masqd's agent, etcd, kube-apiserver.
type daemon struct {
	t      testing.TB
	name   string
	cmd    *exec.Cmd
	exited chan struct{}
	mu     sync.Mutex
	err    error // how it exited, once it has
}

// runDaemon runs `ip netns exec NS argv...` (ip execs argv[0], so the process is that command itself) with
// its output written to out, which where names in the exit error. The caller stops it.
func runDaemon(t testing.TB, ns *NS, name string, out io.Writer, where string, argv ...string) *daemon {
	t.Helper()
	d := &daemon{t: t, name: name, exited: make(chan struct{})}
	d.cmd = exec.Command("ip", append([]string{"netns", "exec", ns.Name}, argv...)...)
	d.cmd.Stdout, d.cmd.Stderr = out, out
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		err := d.cmd.Wait()
		d.mu.Lock()
		d.err = fmt.Errorf("%s exited: %v (%s)", name, err, where)
		d.mu.Unlock()
		close(d.exited)
	}()
	return d
}

// startDaemon runs `ip netns exec NS bin args...` with its output appended to logPath. The caller stops it.
func startDaemon(t testing.TB, ns *NS, name, logPath, bin string, args ...string) *daemon {
	t.Helper()
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	d := runDaemon(t, ns, name, f, "log: "+logPath, append([]string{bin}, args...)...)
	go func() { <-d.exited; f.Close() }()
	return d
}

// exitErr is nil while the daemon runs, and says how it ended once it has.
func (d *daemon) exitErr() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.err
}

// stop sends sig and waits for the daemon to exit, killing it after 15s.
func (d *daemon) stop(sig syscall.Signal) {
	select {
	case <-d.exited:
		return
	default:
	}
	_ = d.cmd.Process.Signal(sig)
	select {
	case <-d.exited:
	case <-time.After(15 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.exited
		d.t.Errorf("%s did not exit within 15s of %s; killed", d.name, sig)
	}
}

// kubeLab is a lab whose node namespace runs a real kube-apiserver and etcd (kubeTools builds them the first
// time); the control plane's logs are shown when the test fails.
func kubeLab(t *testing.T) (*Lab, *controlPlane) {
	t.Helper()
	bins := kubeTools(t)
	lab := newLab(t, labOptions{})
	cp := startControlPlane(t, lab.Node, bins, lab.NodeIP.String())
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("control plane logs:\n%s", cp.Logs())
		}
	})
	return lab, cp
}

// deployRBAC applies the RBAC of deploy/kubernetes (as kubectl kustomize renders it) and returns the token of
// masqd's service account.
func deployRBAC(t *testing.T, cp *controlPlane) string {
	t.Helper()
	base, err := filepath.Abs("../deploy/kubernetes")
	if err != nil {
		t.Fatal(err)
	}
	out, err := cp.Kubectl("kustomize", base)
	if err != nil {
		t.Fatalf("kubectl kustomize: %v", err)
	}
	return applyRBAC(t, cp, decodeManifests(t, out))
}
