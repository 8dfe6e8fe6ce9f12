package main

import (
	"context"
	"os"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ens-sante/ens/fixtures/benchutil"
	"github.com/ens-sante/ens/notify"
	"github.com/ens-sante/ens/optout"
)

// BenchmarkDurableRecordFloor asks whether the end-to-end goal (launch →
// every notice out ≤ 1.25 × (bare go-mail + bare gofpdf), BenchmarkWaveEndToEnd)
// fits in this machine at all. It measures, in one run and on the same
// registry, the CPU that no pipeline keeping our promise can avoid: the
// launch through the real CLI, each person's email rendered, bare go-mail
// and its sink, bare gofpdf, and the least database record — every notice
// inserted, every accepted email recorded before its connection sends the
// next (one statement per SMTP connection's worth of emails, as when all
// connections' acceptances share a commit), every account notified with its
// code hash and deadline, 100 per transaction — written by one connection,
// with no queue, no audit event and no letter batch. It compares their sum
// with what the machine's cores offer in 1.25 × the bare time.
func BenchmarkDurableRecordFloor(b *testing.B) {
	const conns = 4
	keyHex := strings.Repeat("ab", 32)
	key, _ := optout.ParseKey(keyHex)
	n := benchutil.Size(1_000_000)
	e := newBenchEns(b, keyHex)
	c := e.c
	e.importRegistry(n)
	postmaster := postmasterOf(b, c.url)
	pg0 := serverCPU(b, postmaster)
	_, launch, _ := e.run("wave", "launch", "w")
	launchCPU := processCPU(launch) + serverCPU(b, postmaster) - pg0

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, c.url)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	type account struct {
		id    int64
		email bool
	}
	rows, err := conn.Query(ctx, `SELECT a.id, coalesce(p.email, '') <> '' FROM account a JOIN person p ON p.id = a.person_id
		WHERE a.state = 'pending' ORDER BY a.id`)
	if err != nil {
		b.Fatal(err)
	}
	accounts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (account, error) {
		var a account
		return a, r.Scan(&a.id, &a.email)
	})
	if err != nil {
		b.Fatal(err)
	}
	var emails int64
	for _, a := range accounts {
		if a.email {
			emails++
		}
	}
	letters := int64(len(accounts)) - emails

	// The least durable record, one connection, autocommit statements.
	exec := func(sql string, args ...any) {
		if _, err := conn.Exec(ctx, sql, args...); err != nil {
			b.Fatal(err)
		}
	}
	start, pg0, self0 := time.Now(), serverCPU(b, postmaster), benchutil.SelfCPU()
	for i := 0; i < len(accounts); i += 100 {
		group := accounts[i:min(i+100, len(accounts))]
		ids, channels := make([]int64, len(group)), make([]string, len(group))
		hashes, deadlines := make([][]byte, len(group)), make([]time.Time, len(group))
		var sent []int64
		for j, a := range group {
			ids[j], channels[j], deadlines[j] = a.id, "letter", time.Now().AddDate(0, 0, 42)
			hashes[j] = key.LookupHash(key.Derive(a.id))
			if a.email {
				channels[j] = "email"
				sent = append(sent, a.id)
			}
		}
		exec(`INSERT INTO notice (account_id, kind, channel) SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[])`,
			ids, slices.Repeat([]string{"opposition"}, len(ids)), channels)
		for j := 0; j < len(sent); j += conns {
			exec(`UPDATE notice SET status = 'sent', sent_at = now(), deadline = now() + interval '42 days', attempts = attempts + 1
				WHERE account_id = ANY($1) AND channel = 'email' AND status = 'pending'`, sent[j:min(j+conns, len(sent))])
		}
		exec(`UPDATE account a SET state = 'notified', notified_at = now(), deadline = s.deadline, code_hash = s.hash
			FROM unnest($1::bigint[], $2::timestamptz[], $3::bytea[]) s(id, deadline, hash) WHERE a.id = s.id`, ids, deadlines, hashes)
	}
	record, recordPG, recordClient := time.Since(start), serverCPU(b, postmaster)-pg0, benchutil.SelfCPU()-self0

	// Each person's email rendered (bare go-mail sends one rendered email).
	self0 = benchutil.SelfCPU()
	for i := range emails {
		if _, err := notify.RenderEmail(&notify.Notice{ID: i, Kind: notify.KindOpposition, FirstName: "Zoé", LastName: "Martin",
			Code: "ABCD-EFGH-JKMN", Deadline: time.Now()}); err != nil {
			b.Fatal(err)
		}
	}
	renderCPU := benchutil.SelfCPU() - self0

	bt := runBareTools(b, emails, letters, conns, key)

	cores := runtime.NumCPU()
	budget := time.Duration(float64(cores) * 1.25 * float64(bt.emails+bt.letters))
	floor := launchCPU + renderCPU + recordPG + recordClient + bt.emailsCPU + bt.lettersCPU
	secs := func(d time.Duration) float64 { return float64(d.Milliseconds()) / 1000 }
	benchutil.Record(b, "durable-record-floor", map[string]any{
		"people": n, "accounts": len(accounts), "emails": emails, "letters": letters, "smtp_connections": conns, "cores": cores,
		"launch_cpu_s": secs(launchCPU), "email_render_cpu_s": secs(renderCPU),
		"record_s": secs(record), "record_postgres_cpu_s": secs(recordPG), "record_client_cpu_s": secs(recordClient),
		"bare_go_mail_s": secs(bt.emails), "bare_go_mail_and_sink_cpu_s": secs(bt.emailsCPU),
		"bare_gofpdf_s": secs(bt.letters), "bare_gofpdf_cpu_s": secs(bt.lettersCPU),
		// The cores' time in 1.25 × the bare run, and the CPU the floor
		// needs in it: a pipeline doing nothing else would keep the
		// machine this busy to meet the goal (above 1: out of reach).
		"cpu_budget_at_1_25_s": secs(budget), "floor_cpu_s": secs(floor),
		"share_of_machine_needed": round2(float64(floor) / float64(budget)),
	})
}

// processCPU is the user and system CPU a finished process used.
func processCPU(p *os.ProcessState) time.Duration {
	u := p.SysUsage().(*syscall.Rusage)
	return time.Duration(u.Utime.Nano() + u.Stime.Nano())
}
