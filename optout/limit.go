package optout

import (
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
)

// Limiter slows down guessing with growing delays per key (a client address,
// a code), never a hard lock-out: a lock-out would let a stranger stop
// someone from opposing. Every attempt is counted before the lookup
// (Reserve), so concurrent guesses cannot slip through before the delay
// applies; a success takes back only its own attempt (Refund) and never
// wipes a key's history. The first FreeFailures attempts cost nothing;
// each further one doubles the wait, up to MaxDelay.
//
// Keys live in a bounded LRU that forgets them an hour after their last
// attempt, so an attack rotating addresses costs bounded memory and no
// global sweep (the keys attacked hardest are the most recently used).
type Limiter struct {
	FreeFailures int
	BaseDelay    time.Duration
	MaxDelay     time.Duration
	now          func() time.Time

	mu      sync.Mutex
	entries *expirable.LRU[string, *entry]
}

type entry struct {
	attempts  int
	notBefore time.Time
}

// MaxKeys bounds the keys a limiter remembers (about 100 bytes each).
const MaxKeys = 500_000

// NewLimiter returns a limiter with the service's defaults: 5 free
// attempts, then 2 s, 4 s, 8 s… up to 15 minutes.
func NewLimiter() *Limiter {
	return &Limiter{FreeFailures: 5, BaseDelay: 2 * time.Second, MaxDelay: 15 * time.Minute, now: time.Now,
		entries: expirable.NewLRU[string, *entry](MaxKeys, nil, time.Hour)}
}

// Reserve counts an attempt for every key, before the lookup it guards, and
// returns 0; or, when some key must still wait, counts nothing and returns
// how long.
func (l *Limiter) Reserve(keys ...string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	var wait time.Duration
	for _, k := range keys {
		if e, ok := l.entries.Peek(k); ok && e.notBefore.After(now) {
			wait = max(wait, e.notBefore.Sub(now))
		}
	}
	if wait > 0 {
		return wait
	}
	for _, k := range keys {
		e, ok := l.entries.Peek(k)
		if !ok {
			e = &entry{}
		}
		e.attempts++
		if over := e.attempts - l.FreeFailures; over > 0 {
			e.notBefore = now.Add(min(l.BaseDelay<<min(over-1, 30), l.MaxDelay))
		}
		l.entries.Add(k, e) // refreshes its hour
	}
	return 0
}

// Refund takes back one reserved attempt of each key: it was not a guess
// (a success, or a closed window). The keys' other attempts still count.
func (l *Limiter) Refund(keys ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range keys {
		if e, ok := l.entries.Peek(k); ok && e.attempts > 0 {
			e.attempts--
			if e.attempts <= l.FreeFailures {
				e.notBefore = time.Time{}
			}
		}
	}
}
