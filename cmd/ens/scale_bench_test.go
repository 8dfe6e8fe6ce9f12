package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ens-sante/ens/fixtures/benchutil"
	"github.com/ens-sante/ens/fixtures/testdb"
	"github.com/ens-sante/ens/notify/mailsink"
	"github.com/ens-sante/ens/optout"
)

// scaleBareEmails caps the bare go-mail run the per-notice figures are a
// ratio against: its CPU per email does not depend on how many it sends.
const scaleBareEmails = 100_000

// BenchmarkWaveScale measures what a person costs, and whether it stays flat
// as a campaign grows: one wave of ENS_BENCH_PEOPLE people (make
// bench-scale runs 100,000, 1,000,000 and 5,000,000, each on a cluster of
// its own whose shared_buffers is a quarter of what the database will
// hold) through the real CLI — import, launch, one `ens worker
// --until-idle` with 4 SMTP connections to a discarding sink. It records
// the CPU per notice of the launch, the worker and PostgreSQL, and the
// sink's, and compares them, sink included, with bare go-mail's CPU per
// email with its sink, measured in the same run; the wall times; the database's bytes per person by table and
// index once the wave is out; the blocks PostgreSQL read from disk per
// notice; the worker's peak RSS. It prints the table of every size
// recorded so far.
func BenchmarkWaveScale(b *testing.B) {
	const conns = 4
	keyHex := strings.Repeat("ab", 32)
	key, _ := optout.ParseKey(keyHex)
	n := benchutil.Size(100_000)
	if s := os.Getenv("ENS_BENCH_PEOPLE"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			b.Fatalf("ENS_BENCH_PEOPLE: %v", err)
		}
		n = v
	}
	out := filepath.Join(benchutil.Root(), "var", "bench", fmt.Sprintf("wave-scale-%d", n))
	e := newWaveBench(b, keyHex, conns, out+".worker.cpu.pprof")
	c := e.c
	e.importRegistry(n)

	ctx := context.Background()
	owner, err := pgx.Connect(ctx, testdb.OwnerURL(c.url))
	if err != nil {
		b.Fatal(err)
	}
	defer owner.Close(ctx)
	var sharedBuffers string
	owner.QueryRow(ctx, `SHOW shared_buffers`).Scan(&sharedBuffers) //nolint:errcheck
	// What the wave adds is measured from here: the registry is the
	// wave's input, its bytes counted apart.
	var registryBytes int64
	owner.QueryRow(ctx, `SELECT pg_total_relation_size('person')`).Scan(&registryBytes) //nolint:errcheck
	if _, err := owner.Exec(ctx, `CHECKPOINT`); err != nil {
		b.Fatal(err)
	}
	// Blocks read from disk (the OS's cache included), blocks written
	// (checkpoints, background writer, backends: the whole cluster, this
	// database alone), and WAL written.
	type io struct{ read, written, wal int64 }
	ioNow := func() io {
		var v io
		owner.QueryRow(ctx, `SELECT (SELECT blks_read FROM pg_stat_database WHERE datname = current_database()),
			(SELECT buffers_checkpoint + buffers_clean + buffers_backend FROM pg_stat_bgwriter),
			pg_current_wal_lsn() - '0/0'::pg_lsn`).Scan(&v.read, &v.written, &v.wal) //nolint:errcheck
		return v
	}

	postmaster := postmasterOf(b, c.url)
	// Each command's backends are counted once they are reaped.
	clients := benchutil.ServerClients(postmaster)
	pg0, io0 := serverCPU(b, postmaster), ioNow()
	launchTime, launch, _ := e.run("wave", "launch", "w")
	benchutil.WaitClientsGone(postmaster, clients)
	pg1 := serverCPU(b, postmaster)
	self0 := benchutil.SelfCPU()
	roles := benchutil.SampleServerRoles(postmaster, 200*time.Millisecond)
	workerTime, worker, _ := e.run("worker", "--until-idle")
	benchutil.WaitClientsGone(postmaster, clients)
	pg2, io2, sinkCPU := serverCPU(b, postmaster), ioNow(), benchutil.SelfCPU()-self0
	// PostgreSQL's CPU during the wave by what its processes did; what was
	// not seen is processes that came and went between two samples.
	byRole := map[string]float64{}
	seen := time.Duration(0)
	for role, d := range roles.Stop() {
		byRole[role] = round1(d.Seconds())
		seen += d
	}
	byRole["short-lived (autovacuum workers, mostly)"] = round1(max(0, pg2-pg1-seen).Seconds())

	// Where PostgreSQL's time went, when pg_stat_statements is loaded
	// (make bench-scale loads it).
	topStatements(b, owner, out+".statements.txt")
	var emails, letters, pending int64
	owner.QueryRow(ctx, `SELECT count(*) FILTER (WHERE channel = 'email' AND status = 'sent'),
		count(*) FILTER (WHERE channel = 'letter' AND status = 'printed'),
		(SELECT count(*) FROM account WHERE state = 'pending') FROM notice`).Scan(&emails, &letters, &pending) //nolint:errcheck
	if pending != 0 || emails == 0 {
		b.Fatalf("the wave did not finish: %d emails, %d letters, %d accounts pending", emails, letters, pending)
	}
	notices := emails + letters
	relations, total := relationBytes(b, owner)
	var databaseBytes, sharedBufferBytes int64
	owner.QueryRow(ctx, `SELECT pg_database_size(current_database()),
		(SELECT setting::bigint * 8192 FROM pg_settings WHERE name = 'shared_buffers')`).Scan(&databaseBytes, &sharedBufferBytes) //nolint:errcheck

	// Bare go-mail's CPU per email, with its sink (one process). The
	// wave's notices are compared with it sink included too: the sink's
	// CPU during the wave (this process's) counts in the wave's.
	bareN := min(emails, scaleBareEmails)
	bareSink, err := mailsink.Start(mailsink.Options{})
	if err != nil {
		b.Fatal(err)
	}
	self1 := benchutil.SelfCPU()
	if _, err := benchutil.BareEmails(bareSink.Addr(), bareN, conns, key.MailKey(), nil); err != nil {
		b.Fatal(err)
	}
	bareCPU := benchutil.SelfCPU() - self1
	bareSink.Close()
	bareMs := float64(bareCPU) / float64(bareN) / 1e6

	ms := func(d time.Duration) float64 { return round3(float64(d) / float64(notices) / 1e6) }
	launchCPU, workerCPU, pgCPU := processCPU(launch), processCPU(worker), (pg2 - pg0)
	perNotice := float64(launchCPU+workerCPU+pgCPU) / float64(notices) / 1e6
	withSink := perNotice + float64(sinkCPU)/float64(notices)/1e6
	byRelation := map[string]float64{}
	for _, r := range relations {
		byRelation[r.name] = round1(float64(r.bytes) / float64(n))
	}
	benchutil.Record(b, fmt.Sprintf("wave-scale-%d", n), map[string]any{
		"people": n, "emails": emails, "letters": letters, "notices": notices, "smtp_connections": conns,
		"shared_buffers": sharedBuffers, "database_mb": databaseBytes >> 20,
		"shared_buffers_share_of_database": round2(float64(sharedBufferBytes) / float64(databaseBytes)),
		"launch_s":                         round1(launchTime.Seconds()), "worker_s": round1(workerTime.Seconds()),
		"cpu_per_notice_ms": round3(perNotice), "launch_cpu_per_notice_ms": ms(launchCPU),
		"worker_cpu_per_notice_ms": ms(workerCPU), "postgres_cpu_per_notice_ms": ms(pgCPU),
		"postgres_cpu_launch_s": round1((pg1 - pg0).Seconds()), "postgres_cpu_worker_s": round1((pg2 - pg1).Seconds()),
		"postgres_cpu_worker_s_by_process": byRole,
		"sink_cpu_per_notice_ms":           ms(sinkCPU), "bare_go_mail_emails": bareN,
		"bare_go_mail_with_sink_cpu_per_email_ms":        round3(bareMs),
		"ratio_with_sink_cpu_per_notice_over_bare_email": round2(withSink / bareMs),
		"bytes_per_person":                               round1(float64(total) / float64(n)), "bytes_per_person_by_relation": byRelation,
		"registry_bytes_per_person":  round1(float64(registryBytes) / float64(n)),
		"blocks_read_per_notice":     round3(float64(io2.read-io0.read) / float64(notices)),
		"blocks_written_per_notice":  round3(float64(io2.written-io0.written) / float64(notices)),
		"wal_mb_per_million_notices": (io2.wal - io0.wal) * 1_000_000 / notices >> 20,
		"worker_peak_rss_mb":         worker.SysUsage().(*syscall.Rusage).Maxrss / 1024,
	})
	printScaleTable(b)
}

type relationSize struct {
	name  string
	bytes int64
}

// relationBytes returns the size of every table and index the wave writes
// (ens's and River's, TOAST with its table), largest first, and their sum.
// The registry (person) is the wave's input: it is left out.
func relationBytes(b *testing.B, conn *pgx.Conn) ([]relationSize, int64) {
	rows, err := conn.Query(context.Background(), `SELECT c.relname, pg_relation_size(c.oid) + coalesce(pg_total_relation_size(c.reltoastrelid), 0)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'public' AND c.relkind IN ('r', 'i', 'm')
		  AND c.relname NOT IN ('person', 'person_pkey') AND coalesce((SELECT t.relname FROM pg_index x JOIN pg_class t ON t.oid = x.indrelid WHERE x.indexrelid = c.oid), '') <> 'person'
		ORDER BY 2 DESC`)
	if err != nil {
		b.Fatal(err)
	}
	var out []relationSize
	var total int64
	for rows.Next() {
		var r relationSize
		if err := rows.Scan(&r.name, &r.bytes); err != nil {
			b.Fatal(err)
		}
		if r.bytes > 0 {
			out = append(out, r)
			total += r.bytes
		}
	}
	if err := rows.Err(); err != nil {
		b.Fatal(err)
	}
	return out, total
}

// printScaleTable prints, from var/bench, the figures of every size
// measured so far, as the table docs/benchmarks.md quotes.
func printScaleTable(b *testing.B) {
	files, _ := filepath.Glob(filepath.Join(benchutil.Root(), "var", "bench", "wave-scale-*.json"))
	var recs []map[string]any
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var r map[string]any
		if json.Unmarshal(raw, &r) == nil && r["people"] != nil {
			recs = append(recs, r)
		}
	}
	slices.SortFunc(recs, func(x, y map[string]any) int { return int(x["people"].(float64) - y["people"].(float64)) })
	rows := []struct{ label, key string }{
		{"notices (emails + letters)", "notices"}, {"shared_buffers", "shared_buffers"}, {"shared_buffers / database", "shared_buffers_share_of_database"}, {"database after the wave, MB", "database_mb"},
		{"CPU per notice, ms (launch + worker + PostgreSQL)", "cpu_per_notice_ms"},
		{"— launch", "launch_cpu_per_notice_ms"}, {"— worker", "worker_cpu_per_notice_ms"}, {"— PostgreSQL", "postgres_cpu_per_notice_ms"},
		{"— the sink (emails only)", "sink_cpu_per_notice_ms"},
		{"bare go-mail and its sink, CPU per email, ms (same run)", "bare_go_mail_with_sink_cpu_per_email_ms"},
		{"ratio of a notice, its sink included, to bare go-mail's email", "ratio_with_sink_cpu_per_notice_over_bare_email"},
		{"launch, s", "launch_s"}, {"worker (launch → every notice out, less the launch), s", "worker_s"},
		{"database bytes per person after the wave", "bytes_per_person"},
		{"blocks read from disk per notice", "blocks_read_per_notice"},
		{"blocks written per notice", "blocks_written_per_notice"}, {"WAL per million notices, MB", "wal_mb_per_million_notices"}, {"worker peak RSS, MB", "worker_peak_rss_mb"},
	}
	var t strings.Builder
	t.WriteString("| |")
	for _, r := range recs {
		fmt.Fprintf(&t, " %s people |", humanInt(r["people"]))
	}
	t.WriteString("\n|---|")
	for range recs {
		t.WriteString("---|")
	}
	for _, row := range rows {
		fmt.Fprintf(&t, "\n| %s |", row.label)
		for _, r := range recs {
			fmt.Fprintf(&t, " %v |", humanInt(r[row.key]))
		}
	}
	fmt.Fprintf(os.Stdout, "\nBenchmarkWaveScale, %s:\n%s\n", testdb.Settings(), t.String())
	if len(recs) > 0 {
		fmt.Fprintln(os.Stdout, "\nbytes per person by relation, largest size:")
		last := recs[len(recs)-1]["bytes_per_person_by_relation"].(map[string]any)
		names := make([]string, 0, len(last))
		for k := range last {
			names = append(names, k)
		}
		slices.SortFunc(names, func(x, y string) int { return int(last[y].(float64) - last[x].(float64)) })
		for _, k := range names {
			fmt.Fprintf(os.Stdout, "  %-40s %8.1f\n", k, last[k].(float64))
		}
	}
}

// humanInt writes whole numbers with thousands separators, others as they are.
func humanInt(v any) string {
	f, ok := v.(float64)
	if !ok || f != float64(int64(f)) {
		return fmt.Sprint(v)
	}
	s := strconv.FormatInt(int64(f), 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func round1(f float64) float64 { return float64(int64(f*10+0.5)) / 10 }
func round3(f float64) float64 { return float64(int64(f*1000+0.5)) / 1000 }
