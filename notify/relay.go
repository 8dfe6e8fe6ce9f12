package notify

import (
	"context"
	"sync"
	"time"
)

// relay tracks whether the SMTP relay itself works. A failure of the relay
// (it cannot be reached, refuses TLS or authentication, answers 421, refuses
// the sender, or defers every recipient for a while) says nothing about any
// recipient: sending pauses, a prober dials the relay with backoff, and
// sending resumes by itself once it answers. Nobody's email counts as failed
// meanwhile.
type relay struct {
	mu     sync.Mutex
	down   bool
	since  time.Time
	reason string
	upCh   chan struct{} // closed when the relay comes back; replaced when it goes down
	streak int           // consecutive temporary refusals of recipients

	streakLimit int
	probeBase   time.Duration
	probeMax    time.Duration
	probe       func(context.Context) error
	onChange    func(RelayState)
	stop        chan struct{}
	probing     sync.WaitGroup

	// Changes are told one at a time and in order: gen numbers them under
	// mu, and a change older than the last one told is dropped.
	gen      int
	notifyMu sync.Mutex
	told     int
}

// RelayState is what a worker knows of its relay, for logs, /metrics and
// ens wave status. Reason names the failure (an SMTP code or a network
// error class), never a recipient.
type RelayState struct {
	Up     bool
	Since  time.Time
	Reason string
}

func newRelay(streakLimit int, probeBase time.Duration, probe func(context.Context) error) *relay {
	r := &relay{upCh: make(chan struct{}), streakLimit: streakLimit, probeBase: probeBase,
		probeMax: 30 * time.Second, probe: probe, stop: make(chan struct{}), since: time.Now()}
	close(r.upCh)
	if r.probeMax < probeBase {
		r.probeMax = probeBase
	}
	return r
}

// isDown reports whether sending is paused.
func (r *relay) isDown() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.down
}

// state is the current state.
func (r *relay) state() RelayState {
	r.mu.Lock()
	defer r.mu.Unlock()
	return RelayState{Up: !r.down, Since: r.since, Reason: r.reason}
}

// waitUp waits until the relay is up, ctx ends or max passes; it reports
// whether the relay is up.
func (r *relay) waitUp(ctx context.Context, max time.Duration) bool {
	r.mu.Lock()
	ch := r.upCh
	r.mu.Unlock()
	t := time.NewTimer(max)
	defer t.Stop()
	select {
	case <-ch:
		return true
	case <-ctx.Done():
	case <-t.C:
	}
	return !r.isDown()
}

// accepted resets the streak: the relay answered for a recipient.
func (r *relay) accepted() {
	r.mu.Lock()
	r.streak = 0
	r.mu.Unlock()
}

// deferred counts a temporary refusal of a recipient; it reports whether
// the streak of them says the relay, not the recipients, is failing.
func (r *relay) deferred() bool {
	r.mu.Lock()
	r.streak++
	tripped := r.streakLimit > 0 && r.streak >= r.streakLimit
	r.mu.Unlock()
	if tripped {
		r.fail("every recipient deferred")
	}
	return tripped
}

// fail marks the relay down and starts probing it, once per outage.
func (r *relay) fail(reason string) {
	r.mu.Lock()
	if r.down {
		r.mu.Unlock()
		return
	}
	r.down, r.since, r.reason, r.streak = true, time.Now(), reason, 0
	r.upCh = make(chan struct{})
	st := RelayState{Up: false, Since: r.since, Reason: reason}
	r.gen++
	gen := r.gen
	r.probing.Add(1)
	r.mu.Unlock()
	r.notify(st, gen)
	go r.probeUntilUp()
}

// notify tells onChange of state number gen, unless a later one was told.
func (r *relay) notify(st RelayState, gen int) {
	if r.onChange == nil {
		return
	}
	r.notifyMu.Lock()
	defer r.notifyMu.Unlock()
	if gen < r.told {
		return
	}
	r.told = gen
	r.onChange(st)
}

// probeUntilUp dials the relay with doubling delays until it answers.
func (r *relay) probeUntilUp() {
	defer r.probing.Done()
	wait := r.probeBase
	for {
		select {
		case <-r.stop:
			return
		case <-time.After(wait):
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := r.probe(ctx)
		cancel()
		if err == nil {
			break
		}
		r.mu.Lock()
		r.reason = "probe: " + classifyNet(err)
		st := RelayState{Up: false, Since: r.since, Reason: r.reason}
		r.gen++
		gen := r.gen
		r.mu.Unlock()
		r.notify(st, gen) // a heartbeat: the outage is still being watched
		wait = min(wait*2, r.probeMax)
	}
	r.mu.Lock()
	r.down, r.since, r.reason = false, time.Now(), ""
	close(r.upCh)
	st := RelayState{Up: true, Since: r.since}
	r.gen++
	gen := r.gen
	r.mu.Unlock()
	r.notify(st, gen)
}

// close stops the prober.
func (r *relay) close() {
	select {
	case <-r.stop:
	default:
		close(r.stop)
	}
	r.probing.Wait()
}
