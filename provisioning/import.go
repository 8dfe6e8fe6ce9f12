package provisioning

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ImportResult holds an import's figures; its JSON keys are a contract.
type ImportResult struct {
	ImportID    int64            `json:"import_id"`
	File        string           `json:"file"`
	Read        int64            `json:"read"`
	Accepted    int64            `json:"accepted"`
	Inserted    int64            `json:"inserted"`
	Updated     int64            `json:"updated"`
	Unchanged   int64            `json:"unchanged"`
	Rejected    int64            `json:"rejected"`
	Reasons     map[string]int64 `json:"reasons"`
	Warnings    map[string]int64 `json:"warnings"`
	RejectsFile string           `json:"rejects_file,omitempty"`
	// Cancelled and Closed count accounts of people this import reported
	// dead: cancelled before activation, or closed and archived.
	Cancelled int64         `json:"cancelled"`
	Closed    int64         `json:"closed"`
	Duration  time.Duration `json:"-"`
	// Phases times each step, in seconds, for operators and reports.
	Phases map[string]float64 `json:"phases_s"`
}

func (r *ImportResult) phase(name string, start time.Time) time.Time {
	now := time.Now()
	r.Phases[name] = float64(now.Sub(start).Milliseconds()) / 1000
	return now
}

// ImportOptions tunes an import.
type ImportOptions struct {
	Actor string
	// RejectsPath is where the rejects CSV goes; default FILE.rejects.csv.
	RejectsPath string
	Clock       Clock
	// Progress, when set, is called with the number of rows read so far.
	Progress func(read int64)
}

var stageColumns = []string{"line", "reason", "nir_masked", "nir", "sex", "last_name", "first_name", "birth_date",
	"email", "address_line2", "address_line3", "address_line4", "address_line5", "postcode", "city", "country",
	"guardian_nir", "death_date", "department"}

// personColumns are the person columns an import sets, in stage order.
const personColumns = `nir, sex, last_name, first_name, birth_date, email, address_line2, address_line3,
	address_line4, address_line5, postcode, city, country, guardian_nir, death_date, department`

// ImportRegistry streams a registry file into the person table (SPEC §1). The
// whole import is one transaction: a failure leaves nothing half-done, and a
// re-run repairs it. Memory does not grow with the file: rows are validated
// one at a time and copied into a temporary staging table.
func ImportRegistry(ctx context.Context, pool *pgxpool.Pool, path string, opts ImportOptions) (*ImportResult, error) {
	start := time.Now()
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening registry file: %w", err)
	}
	defer f.Close()
	sum := sha256.New()
	br := bufio.NewReaderSize(io.TeeReader(f, sum), 1<<20)
	if bom, _ := br.Peek(3); string(bom) == "\ufeff" {
		br.Discard(3) //nolint:errcheck
	}
	cr := csv.NewReader(br)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	headerRec, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: the file is empty", ErrHeader)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrHeader, err)
	}
	header, err := ParseHeader(append([]string(nil), headerRec...))
	if err != nil {
		return nil, err
	}
	if opts.Actor == "" {
		opts.Actor = ActorSystem
	}
	rejectsPath := opts.RejectsPath
	if rejectsPath == "" {
		rejectsPath = path + ".rejects.csv"
	}
	rejects, err := newRejectsWriter(rejectsPath)
	if err != nil {
		return nil, err
	}
	defer rejects.abort()

	res := &ImportResult{File: filepath.Base(path), Reasons: map[string]int64{}, Warnings: map[string]int64{}, Phases: map[string]float64{}}
	now := opts.Clock.Now()
	today := Day(now)

	tx, err := pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("starting import transaction: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(7100003)`); err != nil {
		return nil, fmt.Errorf("waiting for another import to finish: %w", err)
	}
	if _, err := tx.Exec(ctx, `SET LOCAL synchronous_commit = off; SET LOCAL work_mem = '256MB';
		CREATE UNLOGGED TABLE registry_stage (
			line bigint, reason text, nir_masked text, nir text COLLATE "C", sex smallint, last_name text, first_name text,
			birth_date date, email text, address_line2 text, address_line3 text, address_line4 text,
			address_line5 text, postcode text, city text, country text, guardian_nir text, death_date date,
			department text)`); err != nil {
		return nil, fmt.Errorf("creating import staging table: %w", err)
	}
	src := &stageSource{r: cr, h: header, today: today, res: res, rejects: rejects, progress: opts.Progress}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"registry_stage"}, stageColumns, src); err != nil {
		src.drain()
		if src.err != nil {
			err = src.err
		}
		return nil, fmt.Errorf("copying registry rows (after line %d): %w", src.line, err)
	}
	res.phase("copy", start)
	res.ImportID, err = finishImport(ctx, tx, res, rejects, path, hex.EncodeToString(sum.Sum(nil)), opts.Actor, now)
	if err != nil {
		return nil, err
	}
	t := time.Now()
	// Created and dropped in the import's transaction (imports are
	// serialised): an unlogged table uses shared buffers, where a temporary
	// one spills through a small backend-local cache.
	if _, err := tx.Exec(ctx, `DROP TABLE registry_stage`); err != nil {
		return nil, fmt.Errorf("dropping import staging table: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("committing import: %w", err)
	}
	res.phase("commit", t)
	if res.Rejected > 0 {
		if err := rejects.commit(); err != nil {
			return res, err
		}
		res.RejectsFile = rejectsPath
	}
	res.Duration = time.Since(start)
	return res, nil
}

func finishImport(ctx context.Context, tx pgx.Tx, res *ImportResult, rejects *rejectsWriter, path, sha, actor string, now time.Time) (int64, error) {
	t := time.Now()
	// The first appearance of a NIR wins; later ones are duplicates.
	dups, err := tx.Query(ctx, `UPDATE registry_stage s SET reason = 'duplicate_nir'
		FROM (SELECT line, row_number() OVER (PARTITION BY nir ORDER BY line) AS rn
		      FROM registry_stage WHERE nir IS NOT NULL) d
		WHERE d.line = s.line AND d.rn > 1 AND s.reason IS NULL
		RETURNING s.line, s.nir, s.last_name, s.first_name, s.birth_date::text, coalesce(s.email, ''),
		    coalesce(s.address_line2, ''), coalesce(s.address_line3, ''), coalesce(s.address_line4, ''),
		    coalesce(s.address_line5, ''), coalesce(s.postcode, ''), coalesce(s.city, ''), coalesce(s.country, ''),
		    coalesce(s.guardian_nir, ''), coalesce(s.death_date::text, '')`)
	if err != nil {
		return 0, fmt.Errorf("finding duplicate NIRs: %w", err)
	}
	for dups.Next() {
		var line int64
		vals := make([]string, 14)
		ptrs := []any{&line}
		for i := range vals {
			ptrs = append(ptrs, &vals[i])
		}
		if err := dups.Scan(ptrs...); err != nil {
			dups.Close()
			return 0, fmt.Errorf("reading duplicate NIRs: %w", err)
		}
		fields := map[string]string{}
		for i, c := range append(append([]string{}, RequiredColumns...), OptionalColumns...) {
			fields[c] = vals[i]
		}
		if err := rejects.write(line, RejectDuplicateNIR, fields); err != nil {
			dups.Close()
			return 0, err
		}
		res.Reasons[string(RejectDuplicateNIR)]++
		res.Rejected++
		res.Accepted--
	}
	dups.Close()
	if err := dups.Err(); err != nil {
		return 0, fmt.Errorf("finding duplicate NIRs: %w", err)
	}

	t = res.phase("duplicates", t)
	var importID int64
	if err := tx.QueryRow(ctx, `INSERT INTO registry_import (file_name, file_sha256) VALUES ($1, $2) RETURNING id`,
		filepath.Base(path), sha).Scan(&importID); err != nil {
		return 0, fmt.Errorf("recording import: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO registry_reject (import_id, line, reason, nir_masked)
		SELECT $1, line, reason, nir_masked FROM registry_stage WHERE reason IS NOT NULL`, importID); err != nil {
		return 0, fmt.Errorf("keeping rejected rows: %w", err)
	}
	// Changed people first, then new ones: cheaper than INSERT … ON CONFLICT,
	// and imports are serialised by importLock so no other import races us.
	err = tx.QueryRow(ctx, `WITH u AS (
		UPDATE person p SET sex = s.sex, last_name = s.last_name, first_name = s.first_name, birth_date = s.birth_date,
		    email = s.email, address_line2 = s.address_line2, address_line3 = s.address_line3,
		    address_line4 = s.address_line4, address_line5 = s.address_line5, postcode = s.postcode, city = s.city,
		    country = s.country, guardian_nir = s.guardian_nir, death_date = s.death_date, department = s.department,
		    updated_at = now()
		FROM registry_stage s
		WHERE s.reason IS NULL AND p.nir = s.nir
		  AND (p.sex, p.last_name, p.first_name, p.birth_date, p.email, p.address_line2, p.address_line3,
		       p.address_line4, p.address_line5, p.postcode, p.city, p.country, p.guardian_nir, p.death_date)
		    IS DISTINCT FROM
		      (s.sex, s.last_name, s.first_name, s.birth_date, s.email, s.address_line2, s.address_line3,
		       s.address_line4, s.address_line5, s.postcode, s.city, s.country, s.guardian_nir, s.death_date)
		RETURNING 1)
		SELECT count(*) FROM u`).Scan(&res.Updated)
	if err != nil {
		return 0, fmt.Errorf("updating registry rows: %w", err)
	}
	err = tx.QueryRow(ctx, `WITH i AS (
		INSERT INTO person (`+personColumns+`)
		SELECT `+personColumns+` FROM registry_stage s
		WHERE s.reason IS NULL AND NOT EXISTS (SELECT 1 FROM person p WHERE p.nir = s.nir)
		ORDER BY s.nir -- index locality
		RETURNING 1)
		SELECT count(*) FROM i`).Scan(&res.Inserted)
	if err != nil {
		return 0, fmt.Errorf("inserting registry rows: %w", err)
	}
	res.Unchanged = res.Accepted - res.Inserted - res.Updated
	t = res.phase("upsert", t)

	// A death cancels what has not been sent and closes what is active.
	deaths, err := applyDeaths(ctx, tx, now)
	if err != nil {
		return 0, err
	}
	res.Cancelled, res.Closed = deaths.cancelled, deaths.closed
	res.phase("deaths", t)

	warnings, _ := jsonOf(res.Warnings)
	if _, err := tx.Exec(ctx, `UPDATE registry_import SET finished_at = $2, read = $3, accepted = $4, inserted = $5,
		updated = $6, unchanged = $7, rejected = $8, warnings = $9 WHERE id = $1`,
		importID, now, res.Read, res.Accepted, res.Inserted, res.Updated, res.Unchanged, res.Rejected, warnings); err != nil {
		return 0, fmt.Errorf("recording import figures: %w", err)
	}
	err = AppendAudit(ctx, tx, now, Event{Actor: actor, Action: "registry.import", Details: map[string]any{
		"import_id": importID, "file_sha256": sha, "read": res.Read, "accepted": res.Accepted,
		"inserted": res.Inserted, "updated": res.Updated, "rejected": res.Rejected, "reasons": res.Reasons,
	}})
	return importID, err
}

// stageSource feeds the COPY. A producer goroutine reads, validates and
// converts rows (writing rejected ones to the rejects CSV) in batches, so
// parsing runs on one core while the COPY encodes and sends on the other.
type stageSource struct {
	r        *csv.Reader
	h        *Header
	today    time.Time
	res      *ImportResult
	rejects  *rejectsWriter
	progress func(int64)
	line     int64
	vals     []any
	err      error

	batches chan stageBatch
	cur     [][]any
	next    int
	started bool
}

type stageBatch struct {
	rows [][]any
	err  error
}

const stageBatchSize = 2048

func (s *stageSource) Next() bool {
	if !s.started {
		s.started = true
		s.batches = make(chan stageBatch, 8)
		go s.produce()
	}
	for s.next >= len(s.cur) {
		b, ok := <-s.batches
		if !ok {
			return false
		}
		if b.err != nil {
			s.err = b.err
			return false
		}
		s.cur, s.next = b.rows, 0
	}
	s.vals = s.cur[s.next]
	s.next++
	return true
}

// produce runs in its own goroutine; it alone touches the reader, the
// figures and the rejects file until it closes the channel.
func (s *stageSource) produce() {
	defer close(s.batches)
	batch := make([][]any, 0, stageBatchSize)
	for {
		row, err := s.readRow()
		if err != nil {
			s.batches <- stageBatch{err: err}
			return
		}
		if row == nil {
			break
		}
		batch = append(batch, row)
		if len(batch) == stageBatchSize {
			s.batches <- stageBatch{rows: batch}
			batch = make([][]any, 0, stageBatchSize)
		}
	}
	if len(batch) > 0 {
		s.batches <- stageBatch{rows: batch}
	}
}

// readRow returns the next staged row, nil at the end of the file.
func (s *stageSource) readRow() ([]any, error) {
	rec, err := s.r.Read()
	if errors.Is(err, io.EOF) {
		return nil, nil
	}
	s.res.Read++
	if s.progress != nil && s.res.Read%50_000 == 0 {
		s.progress(s.res.Read)
	}
	var pe *csv.ParseError
	switch {
	case errors.As(err, &pe):
		// Broken quoting: the fields cannot be told apart.
		s.line = int64(pe.StartLine)
		return s.reject(RowResult{Reject: RejectColumnCount}, nil)
	case err != nil:
		return nil, fmt.Errorf("reading registry file: %w", err)
	}
	s.line = int64(lineOf(s.r))
	r := s.h.ValidateRow(rec, s.today)
	for _, w := range r.Warnings {
		s.res.Warnings[w]++
	}
	if r.Reject != "" {
		return s.reject(r, rec)
	}
	s.res.Accepted++
	p := &r.Person
	var death any
	if p.DeathDate != nil {
		death = *p.DeathDate
	}
	return []any{s.line, nil, "", string(p.NIR), int16(p.NIR.Sex()), p.LastName, p.FirstName, p.BirthDate,
		nullable(p.Email), nullable(p.AddressLines[0]), nullable(p.AddressLines[1]), nullable(p.AddressLines[2]),
		nullable(p.AddressLines[3]), nullable(p.Postcode), nullable(p.City), nullable(p.Country),
		nullable(p.GuardianNIR), death, nullable(p.Department)}, nil
}

func (s *stageSource) reject(r RowResult, rec []string) ([]any, error) {
	s.res.Rejected++
	s.res.Reasons[string(r.Reject)]++
	if err := s.rejects.writeRecord(s.line, r.Reject, s.h, rec); err != nil {
		return nil, err
	}
	// Rows rejected after their NIR was read keep it for duplicate detection
	// (the first appearance wins, whatever became of it).
	var nir any
	if n, err := ParseNIR(r.RawNIR); err == nil {
		nir = string(n)
	}
	return []any{s.line, string(r.Reject), MaskNIR(r.RawNIR), nir, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil}, nil
}

func (s *stageSource) Values() ([]any, error) { return s.vals, nil }
func (s *stageSource) Err() error             { return s.err }

// drain waits for the producer after a failed COPY, so that it stops
// touching the figures and the rejects file.
func (s *stageSource) drain() {
	if s.started {
		for range s.batches {
		}
	}
}

func lineOf(r *csv.Reader) int {
	line, _ := r.FieldPos(0)
	return line
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// rejectsWriter writes rejected rows, with their line and reason, in the
// registry's own columns so that a corrected file re-imports as it is. The
// file holds personal data: mode 0600, written to a temp file and renamed.
type rejectsWriter struct {
	path string
	f    *os.File
	w    *csv.Writer
	cols []string
}

func newRejectsWriter(path string) (*rejectsWriter, error) {
	f, err := os.CreateTemp(filepath.Dir(path), ".rejects-*.csv")
	if err != nil {
		return nil, fmt.Errorf("creating rejects file: %w", err)
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return nil, fmt.Errorf("protecting rejects file: %w", err)
	}
	w := &rejectsWriter{path: path, f: f, w: csv.NewWriter(f)}
	w.cols = append(append(append([]string{}, AnnotationColumns...), RequiredColumns...), OptionalColumns...)
	return w, w.w.Write(w.cols)
}

func (w *rejectsWriter) writeRecord(line int64, reason RejectReason, h *Header, rec []string) error {
	fields := map[string]string{}
	for name, i := range h.pos {
		if i < len(rec) {
			fields[name] = rec[i]
		}
	}
	return w.write(line, reason, fields)
}

func (w *rejectsWriter) write(line int64, reason RejectReason, fields map[string]string) error {
	row := make([]string, len(w.cols))
	row[0], row[1] = strconv.FormatInt(line, 10), string(reason)
	for i, c := range w.cols[2:] {
		row[i+2] = fields[c]
	}
	if err := w.w.Write(row); err != nil {
		return fmt.Errorf("writing rejects file: %w", err)
	}
	return nil
}

func (w *rejectsWriter) commit() error {
	w.w.Flush()
	if err := w.w.Error(); err != nil {
		return fmt.Errorf("writing rejects file: %w", err)
	}
	if err := w.f.Close(); err != nil {
		return fmt.Errorf("closing rejects file: %w", err)
	}
	if err := os.Rename(w.f.Name(), w.path); err != nil {
		return fmt.Errorf("publishing rejects file: %w", err)
	}
	w.f = nil
	return nil
}

func (w *rejectsWriter) abort() {
	if w.f != nil {
		w.f.Close()
		os.Remove(w.f.Name())
	}
}
