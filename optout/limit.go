package optout

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Limiter slows down guessing with growing delays per key (a client address,
// a code), never a hard lock-out: a lock-out would let a stranger stop
// someone from opposing. Every attempt is counted before the lookup
// (Reserve), so concurrent guesses cannot slip through before the delay
// applies (a key that must wait counts nothing; the others count the
// refused attempt); a success takes back only its own attempt (Refund) and never
// wipes a key's history. The first FreeFailures attempts cost nothing;
// each further one multiplies the wait by Growth, up to MaxDelay.
//
// The counters live in PostgreSQL (an unlogged table, migration 014), so
// that every `ens serve` process behind a load balancer shares one budget,
// and the server's memory does not grow with the addresses an attacker
// rotates through; a key untouched for TTL starts over and Expire deletes it.
type Limiter struct {
	Pool         *pgxpool.Pool
	FreeFailures int
	BaseDelay    time.Duration
	// Growth multiplies the delay at each further failure: gentle enough
	// that someone sharing an address with a guesser (a family, a
	// workplace, a carrier's NAT) waits under a minute for the first dozen
	// failures, steep enough that a guesser gets a few hundred tries an
	// hour at most.
	Growth   float64
	MaxDelay time.Duration
	TTL      time.Duration
	Now      func() time.Time
}

// NewLimiter returns a limiter on pool with the service's defaults: 5 free
// attempts, then 2 s, 3 s, 4.5 s… (×1.5: 23 s at the twelfth failure) up
// to 15 minutes, forgotten after an hour.
func NewLimiter(pool *pgxpool.Pool) *Limiter {
	return &Limiter{Pool: pool, FreeFailures: 5, BaseDelay: 2 * time.Second, Growth: 1.5, MaxDelay: 15 * time.Minute, TTL: time.Hour, Now: time.Now}
}

// reserveSQL counts an attempt for every key ($1, sorted: rows are locked
// in one order, so concurrent calls never deadlock) in one statement. A
// client that must still wait on any key is answered at once, before
// anything is written: a blocked address's further guesses, each of
// another code, cost the database a read by key, never a row. Otherwise a
// key untouched for the TTL ($6) starts over; a key that must still wait
// counts nothing and keeps its touched_at, which is how the caller tells
// it; any other key counts the attempt, and past $3 free attempts waits $4
// multiplied by $9 each time, up to $5. Concurrent attempts on one key queue on its
// row lock, each seeing the count the one before left: none slips past a
// delay. A guess of a code (its lookup hash $7 with the birth date $8)
// counts nothing when the pair matches an account (ens_code_matches,
// migration 019), as if refunded at once; each row returned says whether
// it did.
const reserveSQL = `WITH waiting AS (
	  SELECT max(not_before - $2::timestamptz) AS wait FROM rate_limit
	  WHERE key = ANY($1::text[]) AND not_before > $2::timestamptz AND touched_at >= $2::timestamptz - $6::interval),
	attempt AS (SELECT CASE WHEN $7::bytea IS NOT NULL AND ens_code_matches($7::bytea, $8::date) THEN 0 ELSE 1 END AS n
	  FROM waiting WHERE wait IS NULL),
	counted AS (
	INSERT INTO rate_limit AS r (key, attempts, not_before, touched_at)
	SELECT k, n, CASE WHEN n > $3::int THEN $2::timestamptz + $4::interval END, $2::timestamptz FROM unnest($1::text[]) k, attempt ORDER BY k
	ON CONFLICT (key) DO UPDATE SET
	  attempts = CASE WHEN r.touched_at < $2::timestamptz - $6::interval THEN excluded.attempts
	                  WHEN r.not_before > $2::timestamptz THEN r.attempts ELSE r.attempts + excluded.attempts END,
	  not_before = CASE WHEN r.touched_at < $2::timestamptz - $6::interval THEN excluded.not_before
	                    WHEN r.not_before > $2::timestamptz OR excluded.attempts = 0 THEN r.not_before
	                    WHEN r.attempts + 1 > $3::int THEN $2::timestamptz + least($4::interval * power($9::float8, least(r.attempts - $3::int, 60)), $5::interval) END,
	  touched_at = CASE WHEN r.touched_at >= $2::timestamptz - $6::interval AND r.not_before > $2::timestamptz THEN r.touched_at ELSE $2::timestamptz END
	RETURNING CASE WHEN touched_at <> $2::timestamptz THEN not_before - $2::timestamptz ELSE interval '0' END,
	  (SELECT n = 0 FROM attempt))
	SELECT wait, false FROM waiting WHERE wait IS NOT NULL
	UNION ALL SELECT * FROM counted`

// Reserve counts an attempt for every key, before the lookup it guards, and
// returns 0; or, when some key must still wait, returns how long (that key
// counting nothing).
func (l *Limiter) Reserve(ctx context.Context, keys ...string) (time.Duration, error) {
	var b pgx.Batch
	var g Guess
	l.QueueGuess(&b, keys, nil, time.Time{}, &g)
	if err := l.Pool.SendBatch(ctx, &b).Close(); err != nil {
		return 0, err
	}
	return g.Wait, nil
}

// Guess is what the limits answered about a guess, once its batch is read.
type Guess struct {
	// Wait: some key must still wait this long; the guess was not looked at.
	Wait time.Duration
	// Matched: the code and birth date are an account's; nothing was counted.
	Matched bool
}

// QueueGuess queues on b a guess of a code (its lookup hash) with a birth
// date against keys: in one statement, it counts against every key unless
// the pair matches an account — a wrong guess is counted before it is
// answered, a right one costs nothing (as if refunded at once) — and
// concurrent guesses on a key queue on its row, each seeing the count the
// one before left. A nil codeHash (malformed input) always counts. *g is
// set when the batch's results are read.
func (l *Limiter) QueueGuess(b *pgx.Batch, keys []string, codeHash []byte, birth time.Time, g *Guess) {
	var date any
	if codeHash != nil {
		date = birth
	}
	sorted := slices.Sorted(slices.Values(keys))
	growth := l.Growth
	if growth < 1 {
		growth = 2
	}
	b.Queue(reserveSQL, sorted, l.Now(), l.FreeFailures, l.BaseDelay, l.MaxDelay, l.TTL, codeHash, date, growth).Query(func(rows pgx.Rows) error {
		*g = Guess{}
		for rows.Next() {
			var wait time.Duration
			if err := rows.Scan(&wait, &g.Matched); err != nil {
				return fmt.Errorf("counting an attempt against the rate limits: %w", err)
			}
			g.Wait = max(g.Wait, wait)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("counting an attempt against the rate limits: %w", err)
		}
		return nil
	})
}

// Refund takes back one reserved attempt of each key: it was not a guess
// (a success, or a closed window). The keys' other attempts still count.
func (l *Limiter) Refund(ctx context.Context, keys ...string) error {
	_, err := l.Pool.Exec(ctx, `UPDATE rate_limit SET attempts = attempts - 1,
		not_before = CASE WHEN attempts - 1 > $2 THEN not_before END
		WHERE key = ANY ($1) AND attempts > 0`, keys, l.FreeFailures)
	if err != nil {
		return fmt.Errorf("refunding an attempt: %w", err)
	}
	return nil
}

// Expire deletes the keys untouched for TTL, a batch at a time, and returns
// how many it deleted. `ens serve` runs it every minute.
func (l *Limiter) Expire(ctx context.Context) (int64, error) {
	var total int64
	for {
		tag, err := l.Pool.Exec(ctx, `DELETE FROM rate_limit WHERE key IN (
			SELECT key FROM rate_limit WHERE touched_at < $1 LIMIT 10000 FOR UPDATE SKIP LOCKED)`, l.Now().Add(-l.TTL))
		if err != nil {
			return total, fmt.Errorf("expiring rate-limit keys: %w", err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < 10000 {
			return total, nil
		}
	}
}
