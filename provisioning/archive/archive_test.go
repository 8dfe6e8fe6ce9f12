package archive_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ens-sante/ens/fixtures/testdb"
	"github.com/ens-sante/ens/provisioning"
	"github.com/ens-sante/ens/provisioning/archive"
	"github.com/ens-sante/ens/provisioning/audit"
	"github.com/ens-sante/ens/provisioning/registry"
	"github.com/ens-sante/ens/provisioning/wave"
)

func TestDeleteArchivePurgeAndReopen(t *testing.T) {
	t.Parallel()
	pool := testdb.Pool(t)
	ctx := context.Background()
	testdb.LaunchAll(t, pool, 200, 4, wave.LaunchOptions{})
	// Two newborns' accounts are active from the start.
	nirs := twoActive(t, pool)
	if len(nirs) < 2 {
		t.Fatal("fixture has fewer than two newborns")
	}
	deletedAt := time.Date(2027, 2, 28, 10, 0, 0, 0, provisioning.Paris)
	at := func(t time.Time) provisioning.Clock { return func() time.Time { return t } }
	for _, n := range nirs {
		acc, err := archive.Delete(ctx, testdb.Store(pool).At(at(deletedAt)), n, archive.ReasonRequest, false, "op")
		if err != nil || acc.State != provisioning.StateArchived {
			t.Fatalf("delete: %+v %v", acc, err)
		}
	}
	if _, err := archive.Delete(ctx, testdb.Store(pool).At(at(deletedAt)), nirs[0], archive.ReasonRequest, false, "op"); !errors.Is(err, provisioning.ErrState) {
		t.Fatalf("deleting twice: %v", err)
	}
	counts, err := archive.Counts(ctx, pool)
	if err != nil || len(counts) != 1 || counts[0].Count != 2 || counts[0].Year != 2027 {
		t.Fatalf("archive counts: %+v %v", counts, err)
	}
	// Reopen one within the ten years: restored with its data.
	if acc, err := archive.Reopen(ctx, testdb.Store(pool).At(at(deletedAt.AddDate(3, 0, 0))), nirs[1], "op"); err != nil || acc.State != provisioning.StateActive {
		t.Fatalf("reopen: %+v %v", acc, err)
	}
	key := []byte("0123456789abcdef0123456789abcdef")
	// The day before the ten years end: nothing is purged.
	retain := provisioning.RetainUntil(deletedAt)
	res, err := archive.Purge(ctx, testdb.Store(pool).At(at(retain.Add(-24*time.Hour))), key, false)
	if err != nil || res.Due != 0 || res.Purged != 0 {
		t.Fatalf("purge a day early: %+v %v", res, err)
	}
	res, err = archive.Purge(ctx, testdb.Store(pool).At(at(retain)), key, true)
	if err != nil || res.Due != 1 || res.Purged != 0 {
		t.Fatalf("dry run: %+v %v", res, err)
	}
	res, err = archive.Purge(ctx, testdb.Store(pool).At(at(retain)), key, false)
	if err != nil || res.Due != 1 || res.Purged != 1 {
		t.Fatalf("purge: %+v %v", res, err)
	}
	// Personal data is gone from every table; a keyed trace remains.
	var persons, archives, traces int
	pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM person WHERE nir = $1), (SELECT count(*) FROM archive),
		(SELECT count(*) FROM purge_trace WHERE nir_hash = $2)`, string(nirs[0]), provisioning.NIRHash(key, string(nirs[0]))).Scan(&persons, &archives, &traces)
	if persons != 0 || archives != 0 || traces != 1 {
		t.Fatalf("after purge: %d person rows, %d archives, %d traces", persons, archives, traces)
	}
	if v, err := audit.Verify(ctx, pool, testdb.AuditKey); err != nil || !v.OK {
		t.Fatalf("audit after purge: %+v %v", v, err)
	}
}

func TestDeathInRegistryCancelsAndArchives(t *testing.T) {
	t.Parallel()
	pool := testdb.Pool(t)
	ctx := context.Background()
	file := testdb.RegistryHeader +
		"255081416802538,Martin,Zoé,1955-08-12,zoe@example.fr,,,,,\n" +
		"222017512345639,Petit,Léo,2022-01-15,,1 rue A,75001,Paris,255081416802538,\n"
	if _, err := registry.Import(ctx, testdb.Store(pool), testdb.WriteRegistry(t, file), registry.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	var chunks []provisioning.Chunk
	wave.Launch(ctx, testdb.Store(pool), provisioning.WaveSpec{Name: "w", Actor: "a"}, testdb.CollectChunks(&chunks), wave.LaunchOptions{})
	deaths := testdb.RegistryHeader +
		"255081416802538,Martin,Zoé,1955-08-12,zoe@example.fr,,,,,2026-01-02\n" +
		"222017512345639,Petit,Léo,2022-01-15,,1 rue A,75001,Paris,255081416802538,2026-01-03\n"
	res, err := registry.Import(ctx, testdb.Store(pool), testdb.WriteRegistry(t, deaths), registry.ImportOptions{})
	if err != nil || res.Cancelled != 1 || res.Closed != 1 || res.Updated != 2 {
		t.Fatalf("deaths: %+v %v", res, err)
	}
	var reason string
	pool.QueryRow(ctx, `SELECT reason FROM archive`).Scan(&reason)
	if reason != "deceased" {
		t.Fatalf("archive reason %q", reason)
	}
}

// The holder's express deletion (R1111-36) is purged within three months,
// not ten years; account show says why and until when, for both kinds.
// (Before: every deletion was kept ten years, and account show said
// neither why nor until when.)
func TestExpressDeletionIsPurgedWithinThreeMonths(t *testing.T) {
	t.Parallel()
	pool := testdb.Pool(t)
	ctx := context.Background()
	testdb.LaunchAll(t, pool, 200, 3, wave.LaunchOptions{})
	nirs := twoActive(t, pool)
	if len(nirs) < 2 {
		t.Fatal("fixture has fewer than two active accounts")
	}
	deletedAt := time.Date(2027, 2, 28, 10, 0, 0, 0, provisioning.Paris)
	at := func(t time.Time) provisioning.Clock { return func() time.Time { return t } }
	if _, err := archive.Delete(ctx, testdb.Store(pool).At(at(deletedAt)), nirs[0], archive.ReasonDeceased, true, "op"); !errors.Is(err, provisioning.ErrState) {
		t.Fatalf("an express deletion for another reason than the holder's request: %v", err)
	}
	express, err := archive.Delete(ctx, testdb.Store(pool).At(at(deletedAt)), nirs[0], archive.ReasonRequest, true, "op")
	if err != nil || express.Archive == nil || express.Archive.PurgeDue == nil || express.Archive.RetainUntil != nil {
		t.Fatalf("express deletion: %+v %v", express, err)
	}
	if due := *express.Archive.PurgeDue; !due.Before(deletedAt.AddDate(0, 3, 0)) || due.Before(deletedAt.AddDate(0, 2, 25)) {
		t.Fatalf("purge due %s for a deletion on %s: want within three months", due, deletedAt)
	}
	kept, err := archive.Delete(ctx, testdb.Store(pool).At(at(deletedAt)), nirs[1], archive.ReasonRequest, false, "op")
	if err != nil || kept.Archive == nil || kept.Archive.RetainUntil == nil || kept.Archive.Reason != archive.ReasonRequest {
		t.Fatalf("deletion: %+v %v", kept, err)
	}
	key := []byte("0123456789abcdef0123456789abcdef")
	res, err := archive.Purge(ctx, testdb.Store(pool).At(at(*express.Archive.PurgeDue)), key, false)
	if err != nil || res.Purged != 1 {
		t.Fatalf("the daily purge on the due day: %+v %v", res, err)
	}
	var state string
	pool.QueryRow(ctx, `SELECT a.state FROM account a WHERE a.id = $1`, express.ID).Scan(&state)
	if state != "purged" {
		t.Fatalf("the express deletion is %s after its purge", state)
	}
}

// twoActive returns the NIRs of the first two active accounts (newborns,
// active from the start).
func twoActive(t *testing.T, pool *pgxpool.Pool) []provisioning.NIR {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT p.nir FROM account a JOIN person p ON p.id = a.person_id WHERE a.state = 'active' ORDER BY a.id LIMIT 2`)
	if err != nil {
		t.Fatal(err)
	}
	nirs, err := pgx.CollectRows(rows, pgx.RowTo[provisioning.NIR])
	if err != nil {
		t.Fatal(err)
	}
	return nirs
}
