package main

import (
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progress returns a callback for long commands: a progress bar with rate and
// ETA when stderr is a terminal, plain log lines (at most one every 2 s)
// otherwise. total < 0 means unknown.
func (a *app) progress(what string, total int64) func(n int64) {
	report := a.progressOf(what, total)
	return func(n int64) { report(n, total) }
}

// progressOf is progress for work whose total grows as it goes (jobs that
// queue more jobs).
func (a *app) progressOf(what string, total int64) func(n, total int64) {
	if f, ok := a.stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		bar := progressbar.NewOptions64(total, progressbar.OptionSetWriter(f), progressbar.OptionSetDescription(what),
			progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionSetItsString("rows"),
			progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionClearOnFinish())
		return func(n, t int64) {
			if t != total {
				total = t
				bar.ChangeMax64(t)
			}
			_ = bar.Set64(n)
		}
	}
	start, last := time.Now(), time.Time{}
	return func(n, total int64) {
		if time.Since(last) < 2*time.Second {
			return
		}
		last = time.Now()
		rate := float64(n) / time.Since(start).Seconds()
		a.log.Info("progress", "what", what, "done", n, "total", total, "per_second", int64(rate))
	}
}
