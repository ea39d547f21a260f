package agent

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Handler serves /healthz (the reconcile loop is alive: 503 with the reason when it has completed nothing
// for a few resync intervals, so that the kubelet restarts a wedged agent), /readyz (200 only while the
// kernel holds the desired ruleset; otherwise 503 and why, such as an invalid config on a node where
// nothing is applied) and, when gatherer is set, /metrics. Every endpoint is read-only.
func (a *Agent) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if err := a.Alive(); err != nil {
			http.Error(w, "not alive: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !a.Ready() {
			msg := "not ready: the kernel does not hold the desired ruleset yet (see the logs and masqd_sync_total)"
			if p := a.notReady.Load(); p != nil {
				msg = *p
			}
			http.Error(w, msg, http.StatusServiceUnavailable)
			return
		}
		body := "ok\n"
		if p := a.note.Load(); p != nil {
			body += *p + "\n"
		}
		_, _ = w.Write([]byte(body))
	})
	if a.s.Gatherer != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(a.s.Gatherer, promhttp.HandlerOpts{}))
	}
	return mux
}
