package main

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/ens-sante/ens/fixtures/testdb"
	"github.com/ens-sante/ens/optout"
)

// NIRs and codes can be given on stdin, out of ps and the shell history
// (before, they were required on the command line); on the command line
// they still work, with a warning.
func TestCodesAndNIRsOnStdin(t *testing.T) {
	keyHex := strings.Repeat("cd", 32)
	t.Setenv("ENS_CODE_KEY", keyHex)
	key, err := optout.ParseKey(keyHex)
	if err != nil {
		t.Fatal(err)
	}
	c := &cli{t: t, url: testdb.URL(t), dir: t.TempDir()}
	c.importFixture("30", "5")
	if code, _, errs := c.run("wave", "launch", "w"); code != 0 {
		t.Fatal(errs)
	}
	ctx := context.Background()
	conn := c.db()
	var id int64
	var nir, birth string
	if err := conn.QueryRow(ctx, `SELECT a.id, p.nir, p.birth_date::text FROM account a JOIN person p ON p.id = a.person_id
		WHERE a.state = 'pending' ORDER BY a.id LIMIT 1`).Scan(&id, &nir, &birth); err != nil {
		t.Fatal(err)
	}
	code := key.Derive(id)
	if _, err := conn.Exec(ctx, `UPDATE account SET state = 'notified', notified_at = now(), deadline = now() + interval '10 days', code_hash = $2 WHERE id = $1`,
		id, key.LookupHash(code)); err != nil {
		t.Fatal(err)
	}

	st, out, errs := c.runStdin(nir+"\n", "account", "show")
	if st != 0 || !strings.Contains(out, "account "+strconv.FormatInt(id, 10)) || strings.Contains(errs, "command line") {
		t.Fatalf("account show, NIR on stdin: %d\n%s%s", st, out, errs)
	}
	st, out, errs = c.runStdin(code.String()+"\n", "optout", "--code-stdin", "--birth-date", birth, "--operator", "olga")
	if st != 0 || !strings.Contains(out, "opposition recorded") {
		t.Fatalf("optout, code on stdin: %d\n%s%s", st, out, errs)
	}
	if strings.Contains(out+errs, code.String()) || strings.Contains(out+errs, nir) {
		t.Fatalf("the code or the NIR is echoed:\n%s%s", out, errs)
	}
	if st, _, errs := c.run("account", "show", nir); st != 0 || !strings.Contains(errs, "shell history") {
		t.Fatalf("account show, NIR as argument: %d, want it done with a warning\n%s", st, errs)
	}
	if st, _, errs := c.run("account", "show"); st != 2 || !strings.Contains(errs, "stdin") {
		t.Fatalf("account show, no NIR at all: %d\n%s", st, errs)
	}
}
