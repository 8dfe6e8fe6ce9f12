package window_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ens-sante/ens/fixtures"
	"github.com/ens-sante/ens/fixtures/testdb"
	"github.com/ens-sante/ens/provisioning"
	"github.com/ens-sante/ens/provisioning/notice"
	"github.com/ens-sante/ens/provisioning/registry"
	"github.com/ens-sante/ens/provisioning/window"
)

// Codes of 55 bits collide somewhere among 65 million: here three accounts
// are given one code hash, as a tiny code space would. A collision never
// blocks a notice (their accounts become notified together), the code with
// each holder's birth date opens that holder's account only, and a pair
// shared by two holders opens none. (Before: the UNIQUE code hash failed
// the update that notifies a chunk, on every retry.)
func TestCodeCollisionsAreHarmless(t *testing.T) {
	t.Parallel()
	pool := testdb.Pool(t)
	ctx := context.Background()
	file := testdb.RegistryHeader +
		"255081416802538,Martin,Zoé,1955-08-12,zoe@example.fr,,,,,\n" +
		"284052A32102552,Ñúñez,Gaëlle,1984-05-02,g@example.fr,,,,,\n" +
		"295109912611193,Bordeaux,Jean,1995-10-01,j@example.fr,,,,,\n" +
		fixtures.ValidNIR(1, 95, 10, 99, 612) + ",Bordeaux,Paul,1995-10-01,p@example.fr,,,,,\n"
	if res, err := registry.Import(ctx, testdb.Store(pool), testdb.WriteRegistry(t, file), registry.ImportOptions{}); err != nil || res.Accepted != 4 {
		t.Fatalf("import: %+v %v", res, err)
	}
	testdb.Launch(t, pool, provisioning.WaveSpec{Name: "w", Actor: "t"})
	w, err := provisioning.GetWave(ctx, pool, "w")
	if err != nil {
		t.Fatal(err)
	}
	rows, _ := pool.Query(ctx, `SELECT a.id, p.birth_date, p.first_name FROM account a JOIN person p ON p.id = a.person_id ORDER BY a.id`)
	type acc struct {
		id    int64
		birth time.Time
		first string
	}
	var accs []acc
	for rows.Next() {
		var a acc
		rows.Scan(&a.id, &a.birth, &a.first)
		accs = append(accs, a)
	}
	rows.Close()
	hash := []byte("one hash")
	var sent []notice.Sent
	for _, a := range accs {
		var noticeID int64
		if err := pool.QueryRow(ctx, `INSERT INTO notice (account_id, kind, channel, status, sent_at) VALUES ($1, 'opposition', 'email', 'pending', NULL) RETURNING id`, a.id).Scan(&noticeID); err != nil {
			t.Fatal(err)
		}
		s := notice.Accepted(w, noticeID, a.id, provisioning.NoticeOpposition, time.Now())
		s.CodeHash = hash
		sent = append(sent, s)
	}
	if err := notice.MarkEmailsSent(ctx, testdb.Store(pool), w, sent); err != nil {
		t.Fatalf("notifying accounts whose codes collide: %v", err)
	}
	byFirst := map[string]acc{}
	for _, a := range accs {
		byFirst[a.first] = a
	}
	for _, first := range []string{"Zoé", "Gaëlle"} {
		h, err := window.FindHolder(ctx, pool, hash, byFirst[first].birth)
		if err != nil || h.AccountID != byFirst[first].id {
			t.Fatalf("%s's code and birth date: %+v %v", first, h, err)
		}
	}
	res, err := window.Oppose(ctx, testdb.Store(pool), window.Attempt{CodeHash: hash, Birth: byFirst["Gaëlle"].birth, Channel: "web", Actor: "t"})
	if err != nil || res.Receipt == nil {
		t.Fatalf("Gaëlle opposes: %v", err)
	}
	var opposed []string
	r2, _ := pool.Query(ctx, `SELECT p.first_name FROM account a JOIN person p ON p.id = a.person_id WHERE a.state = 'opposed'`)
	for r2.Next() {
		var f string
		r2.Scan(&f)
		opposed = append(opposed, f)
	}
	r2.Close()
	if len(opposed) != 1 || opposed[0] != "Gaëlle" {
		t.Fatalf("opposed: %v, want Gaëlle only", opposed)
	}
	// Jean and Paul share the code and the birth date: nobody is answered for.
	if _, err := window.Oppose(ctx, testdb.Store(pool), window.Attempt{CodeHash: hash, Birth: byFirst["Jean"].birth, Channel: "web", Actor: "t"}); !errors.Is(err, window.ErrNoMatch) {
		t.Fatalf("an ambiguous pair: %v, want no match", err)
	}
	var n int
	pool.QueryRow(ctx, `SELECT count(*) FROM account WHERE state = 'opposed'`).Scan(&n)
	if n != 1 {
		t.Fatalf("%d accounts opposed after the ambiguous attempt", n)
	}
}

// A person who turns 18 within the next 30 days needs no guardian in the
// registry: their notice is addressed when it is sent. One who will still
// be a minor is rejected. (Before: minority was judged on the import day.)
func TestMinorityJudgedAtNoticeTime(t *testing.T) {
	t.Parallel()
	pool := testdb.Pool(t)
	today := time.Now().In(provisioning.Paris)
	soon := today.AddDate(-18, 0, 10)  // 18 in ten days
	later := today.AddDate(-18, 0, 40) // 18 in forty days
	row := func(sex int, b time.Time, first string) string {
		return fixtures.ValidNIR(sex, b.Year(), int(b.Month()), 75, 300+b.Day()) + ",Durand," + first + "," + b.Format(time.DateOnly) + "," + first + "@example.fr,,,,,\n"
	}
	res, err := registry.Import(context.Background(), testdb.Store(pool), testdb.WriteRegistry(t, testdb.RegistryHeader+row(1, soon, "soon")+row(2, later, "later")), registry.ImportOptions{})
	if err != nil || res.Accepted != 1 || res.Reasons["minor_without_guardian"] != 1 {
		t.Fatalf("import: %+v %v", res, err)
	}
}
