package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watchFile kicks the loop when the config changes on disk. It watches the config's directory, not the
// file, so that every way a file is replaced is seen: a plain write, an editor's rename over it, the
// kubelet's ConfigMap volume swapping its ..data symlink, a delete and a later create. Bursts of events
// are coalesced into one reload. If the directory does not exist yet, the resync timer still reloads.
// It closes watching once the watch is in place, or known to be impossible.
func (a *Agent) watchFile(ctx context.Context, watching chan<- struct{}) error {
	dir, match := a.watchTarget()
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch config: %w", err)
	}
	defer w.Close()
	err = w.Add(dir)
	close(watching)
	if err != nil {
		a.s.Log.Warn("cannot watch the config directory; changes are seen at each resync only", "dir", dir, "err", err)
		<-ctx.Done()
		return nil
	}
	settle := time.NewTimer(0)
	settle.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if match(filepath.Base(ev.Name)) {
				settle.Reset(coalesce)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			a.s.Log.Warn("config watch error; reloading", "err", err)
			settle.Reset(coalesce)
		case <-settle.C:
			a.kick(reasonFile)
		}
	}
}

// watchTarget returns the directory to watch and which names in it matter.
func (a *Agent) watchTarget() (dir string, match func(name string) bool) {
	path := filepath.Clean(a.s.ConfigPath)
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return path, func(name string) bool { return strings.HasPrefix(name, "ip-masq") || name == "..data" }
	}
	base := filepath.Base(path)
	return filepath.Dir(path), func(name string) bool { return name == base || name == "..data" }
}
