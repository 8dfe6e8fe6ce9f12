package jobs

import (
	"context"
	"log/slog"
	"time"

	"github.com/ens-sante/ens/notify"
	"github.com/ens-sante/ens/provisioning"
	"github.com/ens-sante/ens/provisioning/notice"
)

// RelayRecorder returns what a mailer calls when its relay fails, is probed
// in vain, or comes back: a log line at each change of state, and the
// worker's row in smtp_relay, which /metrics (ens_smtp_relay_up) and
// ens wave status read from any process.
func RelayRecorder(db provisioning.DBTX, worker string, log *slog.Logger) func(notify.RelayState) {
	var wasDown bool
	return func(st notify.RelayState) {
		switch {
		case !st.Up && !wasDown:
			log.Warn("SMTP relay failed: sending paused, nobody moves to a letter for it", "reason", st.Reason)
		case st.Up && wasDown:
			log.Info("SMTP relay back: sending resumes")
		}
		wasDown = !st.Up
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := notice.RecordRelayState(ctx, db, worker, st.Up, st.Since, st.Reason); err != nil {
			log.Error("recording the SMTP relay's state", "error", err)
		}
	}
}
