package agent

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Handler serves /healthz (the process is alive), /readyz (200 only while the kernel holds the desired
// ruleset) and, when gatherer is set, /metrics. Every endpoint is read-only.
func (a *Agent) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !a.Ready() {
			http.Error(w, "not ready: the kernel does not hold the desired ruleset yet (see the logs and masqd_sync_total)", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	if a.s.Gatherer != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(a.s.Gatherer, promhttp.HandlerOpts{}))
	}
	return mux
}
