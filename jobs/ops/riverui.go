package ops

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ens-sante/ens/provisioning/audit"
)

// maxRiverUIBody bounds what an audited River UI request may carry (its API
// takes at most 1,000 job ids).
const maxRiverUIBody = 64 << 10

// auditRiverUI writes every River UI action that succeeded (cancel, delete
// or retry jobs; pause, resume or change a queue) to the audit log with the
// operator's name and the jobs it touched: cancelling a notice chunk means
// people not told, and an auditor must be able to see who did it.
func (h *Handler) auditRiverUI(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			next.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRiverUIBody))
		if err != nil {
			http.Error(w, "request too large", http.StatusRequestEntityTooLarge)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		// Job ids are read as River reads them (strings or numbers, any
		// form strconv accepts: "02", "+3"); an id that cannot be read is
		// refused here rather than acted on unaudited.
		var in struct {
			IDs []json.RawMessage `json:"ids"`
		}
		json.Unmarshal(body, &in) //nolint:errcheck // River UI answers malformed bodies itself
		ids := make([]int64, 0, len(in.IDs))
		for _, raw := range in.IDs {
			n, err := strconv.ParseInt(strings.Trim(string(raw), `"`), 10, 64)
			if err != nil {
				http.Error(w, "a job id that is not a number: refused", http.StatusBadRequest)
				return
			}
			ids = append(ids, n)
		}
		kinds := h.jobKinds(r, ids) // before a delete removes them
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		if rec.status >= 300 {
			return
		}
		action := strings.TrimPrefix(r.URL.Path, "/ops/river/api/")
		details := map[string]any{"method": r.Method, "action": action}
		if len(ids) > 0 {
			details["job_ids"], details["job_kinds"] = ids, kinds
		}
		err = pgx.BeginFunc(r.Context(), h.pool, func(tx pgx.Tx) error {
			return audit.Append(r.Context(), tx, h.svc.AuditKey, time.Now(), audit.Event{
				Actor: userOf(r).Name, Action: "ops.river_ui", Details: details})
		})
		if err != nil {
			h.log.Error("auditing a River UI action: the action was done, its audit event is missing",
				"user", userOf(r).Name, "action", action, "error", err)
		}
	})
}

// jobKinds counts the kinds of the jobs ids name.
func (h *Handler) jobKinds(r *http.Request, ids []int64) map[string]int {
	kinds := map[string]int{}
	if len(ids) == 0 {
		return kinds
	}
	rows, err := h.pool.Query(r.Context(), `SELECT kind, count(*) FROM river_job WHERE id = ANY ($1) GROUP BY 1`, ids)
	if err != nil {
		h.log.Error("reading the kinds of jobs a River UI action touches", "error", err)
		return kinds
	}
	defer rows.Close()
	for rows.Next() {
		var k string
		var n int
		if rows.Scan(&k, &n) == nil {
			kinds[k] = n
		}
	}
	return kinds
}

// statusRecorder remembers the status a handler answered with.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
