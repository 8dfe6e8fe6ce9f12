package optout

import (
	"sync"
	"time"
)

// Limiter slows down guessing with growing delays per key (a client address,
// a code), never a hard lock-out: a lock-out would let a stranger stop
// someone from opposing. The first FreeFailures failures cost nothing; each
// further one doubles the wait, up to MaxDelay. A success clears the key.
type Limiter struct {
	FreeFailures int
	BaseDelay    time.Duration
	MaxDelay     time.Duration
	now          func() time.Time

	mu      sync.Mutex
	entries map[string]*entry
	sweep   time.Time
}

type entry struct {
	failures  int
	notBefore time.Time
	last      time.Time
}

// NewLimiter returns a limiter with the service's defaults: 5 free failures,
// then 2 s, 4 s, 8 s… up to 15 minutes.
func NewLimiter() *Limiter {
	return &Limiter{FreeFailures: 5, BaseDelay: 2 * time.Second, MaxDelay: 15 * time.Minute, now: time.Now,
		entries: map[string]*entry{}}
}

// Wait returns how long the keys must still wait (0: go ahead).
func (l *Limiter) Wait(keys ...string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	var wait time.Duration
	for _, k := range keys {
		if e := l.entries[k]; e != nil && e.notBefore.After(now) {
			wait = max(wait, e.notBefore.Sub(now))
		}
	}
	return wait
}

// Fail records a failed attempt for each key.
func (l *Limiter) Fail(keys ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.gc(now)
	for _, k := range keys {
		e := l.entries[k]
		if e == nil {
			e = &entry{}
			l.entries[k] = e
		}
		e.failures++
		e.last = now
		if over := e.failures - l.FreeFailures; over > 0 {
			d := min(l.BaseDelay<<min(over-1, 30), l.MaxDelay)
			e.notBefore = now.Add(d)
		}
	}
}

// Succeed clears the keys.
func (l *Limiter) Succeed(keys ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range keys {
		delete(l.entries, k)
	}
}

// gc forgets keys idle for an hour, so memory stays bounded.
func (l *Limiter) gc(now time.Time) {
	if now.Sub(l.sweep) < time.Minute {
		return
	}
	l.sweep = now
	for k, e := range l.entries {
		if now.Sub(e.last) > time.Hour && !e.notBefore.After(now) {
			delete(l.entries, k)
		}
	}
}
