package jobs

import (
	"context"
	"sync"
	"time"

	"github.com/ens-sante/ens/provisioning"
	"github.com/ens-sante/ens/provisioning/notice"
)

// marker records accepted emails for every sender of a worker process. Each
// sender waits until its email is recorded, so a crash re-sends at most one
// message per sender; the senders waiting at one moment share a statement
// (a group commit: the first to arrive records for all who queue meanwhile).
type marker struct {
	db      provisioning.DBTX
	mu      sync.Mutex
	queue   []markReq
	writing bool
	full    chan struct{} // the queue reached markBatch while a writer gathers
}

// A writer gathers for at most markWindow, or until markBatch senders wait,
// before it records: one statement then serves several messages (what
// PostgreSQL's commit_delay does for commits).
const (
	markWindow = 2 * time.Millisecond
	markBatch  = 16
)

func newMarker(db provisioning.DBTX) *marker {
	return &marker{db: db, full: make(chan struct{}, 1)}
}

type markReq struct {
	sent   notice.Sent
	result chan error
}

// record returns once s is recorded.
func (m *marker) record(s notice.Sent) error {
	r := markReq{sent: s, result: make(chan error, 1)}
	m.mu.Lock()
	m.queue = append(m.queue, r)
	if m.writing {
		if len(m.queue) >= markBatch {
			select {
			case m.full <- struct{}{}:
			default:
			}
		}
		m.mu.Unlock()
		return <-r.result
	}
	m.writing = true
	select {
	case <-m.full: // left by the previous writer's gathering
	default:
	}
	m.mu.Unlock()
	gather := time.NewTimer(markWindow)
	select {
	case <-m.full:
	case <-gather.C:
	}
	gather.Stop()
	m.mu.Lock()
	for len(m.queue) > 0 {
		batch := m.queue
		m.queue = nil
		m.mu.Unlock()
		sent := make([]notice.Sent, len(batch))
		for i, q := range batch {
			sent[i] = q.sent
		}
		err := notice.MarkEmailsAccepted(context.Background(), m.db, sent)
		for _, q := range batch {
			q.result <- err
		}
		m.mu.Lock()
	}
	m.writing = false
	m.mu.Unlock()
	return <-r.result
}
