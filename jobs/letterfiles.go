package jobs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ens-sante/ens/notify"
	"github.com/ens-sante/ens/provisioning"
	"github.com/ens-sante/ens/provisioning/notice"
)

// stagedMaxAge is how old a staged letter file must be before the recovery
// removes it: younger ones may belong to a batch another worker is still
// committing (a render times out after Deps.RenderTimeout, a minute by
// default).
const stagedMaxAge = time.Hour

// RecoverLetterFiles settles the letter files a crash left under staging
// names: those a committed batch names are published (the crash fell
// between the commit and the rename); the others hold codes no table knows
// and are removed once older than stagedMaxAge (maxAge in tests). It runs
// when a worker starts and with each window sweep.
func RecoverLetterFiles(ctx context.Context, db provisioning.DBTX, dir string, maxAge time.Duration, log *slog.Logger) (published, removed int, err error) {
	return settleStaged(ctx, db, dir, func(string) bool { return true }, maxAge, log)
}

// settleDepartmentFiles settles, before a render of a wave's department,
// the staged files an earlier attempt of that render left in the wave's
// directory: a department's render runs once at a time (its job is
// unique), so such a file belongs either to a batch that committed
// (published) or to an attempt that died — a worker killed mid-render —
// and holds codes no table knows (removed now, not an hour later).
func settleDepartmentFiles(ctx context.Context, db provisioning.DBTX, waveDir, dept string, log *slog.Logger) error {
	prefix := notify.StagingPrefix + batchFilePrefix(dept)
	_, _, err := settleStaged(ctx, db, waveDir, func(p string) bool { return strings.HasPrefix(filepath.Base(p), prefix) }, 0, log)
	return err
}

// batchFilePrefix begins the names of a department's batch files.
func batchFilePrefix(dept string) string { return "dept-" + dept + "-batch-" }

func settleStaged(ctx context.Context, db provisioning.DBTX, dir string, match func(string) bool, maxAge time.Duration,
	log *slog.Logger) (published, removed int, err error) {
	staged, err := notify.StagedFiles(dir)
	if err != nil || len(staged) == 0 {
		return 0, 0, err
	}
	committed, err := notice.BatchFiles(ctx, db)
	if err != nil {
		return 0, 0, err
	}
	for stagedPath, final := range staged {
		if !match(stagedPath) {
			continue
		}
		if committed[final] {
			if err := notify.PublishStaged(final); err != nil {
				return published, removed, err
			}
			published++
			continue
		}
		fi, err := os.Stat(stagedPath)
		if err != nil || time.Since(fi.ModTime()) < maxAge {
			continue
		}
		if err := os.Remove(stagedPath); err != nil {
			return published, removed, fmt.Errorf("removing an orphan letter file: %w", err)
		}
		removed++
	}
	if published+removed > 0 {
		log.Info("letter files left by a crash settled", "published", published, "orphans_removed", removed)
	}
	return published, removed, nil
}

// DeleteExpiredLetterFiles deletes the PDFs (they hold codes) of batches
// posted more than retention ago, and of batches never acknowledged
// retention after their posting SLA; the manifests, rows and SHA-256 stay.
// It runs with each window sweep.
func DeleteExpiredLetterFiles(ctx context.Context, st *provisioning.Store, retention, sla time.Duration, log *slog.Logger) (int, error) {
	files, err := notice.ExpiredLetterFiles(ctx, st.Pool, retention, sla, st.Clock.Now())
	if err != nil || len(files) == 0 {
		return 0, err
	}
	var ids []int64
	for id, f := range files {
		if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return 0, fmt.Errorf("deleting a letter file past retention: %w", err)
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	if err := notice.RecordLetterFilesDeleted(ctx, st, ids); err != nil {
		return 0, err
	}
	log.Info("letter files deleted after their retention", "batches", len(ids))
	return len(ids), nil
}
