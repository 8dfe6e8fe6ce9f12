package jobs

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/ens-sante/ens/provisioning"
	"github.com/ens-sante/ens/provisioning/notice"
	"github.com/ens-sante/ens/provisioning/window"
)

// CloseWindowsArgs activates the accounts whose opposition window ended.
type CloseWindowsArgs struct{}

// Kind is stable: stored jobs refer to it.
func (CloseWindowsArgs) Kind() string { return "close_windows" }

// InsertOpts keeps one sweep queued or running at a time.
func (CloseWindowsArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueMaintenance, UniqueOpts: river.UniqueOpts{ByArgs: true,
		ByState: uniqueWhileOutstanding}}
}

// CloseWindowsWorker activates accounts whose window ended.
type CloseWindowsWorker struct {
	river.WorkerDefaults[CloseWindowsArgs]
	deps    *Deps
	letters provisioning.LetterFunc
	client  func() *river.Client[pgx.Tx]
}

// Work runs one sweep: ended windows closed, stray letters queued.
func (w *CloseWindowsWorker) Work(ctx context.Context, _ *river.Job[CloseWindowsArgs]) error {
	n, err := window.Close(ctx, w.deps.Store(), w.deps.ActivationGrace, 0)
	if n > 0 {
		w.deps.Logger.Info("windows closed", "activated", n)
	}
	if err != nil {
		return err
	}
	if withheld, err := window.WithheldActivations(ctx, w.deps.Pool, w.deps.Clock.Now(), w.deps.ActivationGrace); err != nil {
		return err
	} else if withheld > 0 {
		w.deps.Logger.Warn("windows ended but accounts not activated: no proof their person was informed (letter not posted) or no code",
			"accounts", withheld)
	}
	if _, _, err := RecoverLetterFiles(ctx, w.deps.Pool, w.deps.LettersDir, stagedMaxAge, w.deps.Logger); err != nil {
		return err
	}
	if _, err := DeleteExpiredLetterFiles(ctx, w.deps.Store(), w.deps.LetterRetention, w.deps.PostingSLA, w.deps.Logger); err != nil {
		return err
	}
	if _, err = SweepLetters(ctx, w.deps.Pool, w.letters); err != nil {
		return err
	}
	// Curators' copies of people told by letter wait for the letter.
	_, err = SweepFollowUps(ctx, w.deps.Pool, w.client())
	return err
}

// SweepFollowUps queues the follow-up emails' job when some are ready (a
// curator's copy whose person's letter has been rendered since); it says
// whether it did.
func SweepFollowUps(ctx context.Context, pool *pgxpool.Pool, client *river.Client[pgx.Tx]) (bool, error) {
	var queued bool
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) (err error) {
		queued, err = queueFollowUps(ctx, tx, client)
		return err
	})
	return queued, err
}

// queueFollowUps queues the follow-up emails' job in tx when some are
// ready; it says whether it did.
func queueFollowUps(ctx context.Context, tx pgx.Tx, client *river.Client[pgx.Tx]) (bool, error) {
	ready, err := notice.FollowUpsReady(ctx, tx)
	if err != nil || !ready {
		return false, err
	}
	if _, err := client.InsertTx(ctx, tx, SendExtensionsArgs{}, nil); err != nil {
		return false, fmt.Errorf("queueing follow-up emails: %w", err)
	}
	return true, nil
}

// SweepLetters queues a render for every wave and department that has
// pending letters; it returns how many groups it found.
func SweepLetters(ctx context.Context, pool *pgxpool.Pool, letters provisioning.LetterFunc) (int, error) {
	groups, err := notice.PendingLetterGroups(ctx, pool)
	if err != nil || len(groups) == 0 {
		return 0, err
	}
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		for w, depts := range groups {
			if err := letters(ctx, tx, w, depts); err != nil {
				return err
			}
		}
		return nil
	})
	return len(groups), err
}
