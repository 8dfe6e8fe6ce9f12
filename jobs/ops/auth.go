package ops

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// Role of an ops user.
type Role string

// The roles. An operator may do everything; an auditor reads the reports
// and metrics and changes nothing; a call-centre agent only records
// oppositions through the agents' API.
const (
	RoleOperator Role = "operator"
	RoleAuditor  Role = "auditor"
	RoleAgent    Role = "agent"
	// RolePlatform is the Mon espace santé platform: it reads the change
	// feed, and nothing else.
	RolePlatform Role = "platform"
)

// User is one account of the ops area.
type User struct {
	Name string
	Role Role
	Hash []byte // bcrypt
}

// ParseUsers reads "name:role:bcrypt-hash" lines (blank lines and # comments
// ignored), from ENS_OPS_USERS_FILE or ENS_OPS_USERS (comma-separated).
func ParseUsers(r io.Reader) (map[string]User, error) {
	users := map[string]User{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		for _, entry := range strings.Split(sc.Text(), ",") {
			line := strings.TrimSpace(entry)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			parts := strings.SplitN(line, ":", 3)
			if len(parts) != 3 || !validRole(Role(parts[1])) || !strings.HasPrefix(parts[2], "$2") {
				return nil, fmt.Errorf("ops users line %d: expected name:operator|auditor|agent:bcrypt-hash", n)
			}
			users[parts[0]] = User{Name: parts[0], Role: Role(parts[1]), Hash: []byte(parts[2])}
		}
	}
	return users, sc.Err()
}

func validRole(r Role) bool {
	return r == RoleOperator || r == RoleAuditor || r == RoleAgent || r == RolePlatform
}

// LoadUsers reads the users from the file named (ENS_OPS_USERS_FILE), or
// else from inline (ENS_OPS_USERS).
func LoadUsers(file, inline string) (map[string]User, error) {
	if p := file; p != "" {
		f, err := os.Open(p)
		if err != nil {
			return nil, fmt.Errorf("reading ENS_OPS_USERS_FILE: %w", err)
		}
		defer f.Close()
		return ParseUsers(f)
	}
	if v := inline; v != "" {
		return ParseUsers(strings.NewReader(v))
	}
	return nil, errors.New("no ops users: set ENS_OPS_USERS_FILE or ENS_OPS_USERS (name:role:bcrypt-hash; see ens ops hash)")
}

type ctxKey struct{}

// userOf is the signed-in user of a request that passed auth.
func userOf(r *http.Request) User {
	u, _ := r.Context().Value(ctxKey{}).(User)
	return u
}

var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("not a password"), bcrypt.DefaultCost)

// may reports whether a user of role have may reach a route needing need:
// operators everywhere; auditors where an auditor suffices, to read; agents
// only on the agents' API; the platform on its feed only.
func may(have, need Role, method string) (bool, string) {
	switch {
	case have == RoleOperator:
		return true, ""
	case have == RolePlatform && need != RolePlatform, need == RolePlatform && have != RolePlatform:
		return false, "the platform's feed only"
	case have != need && need != RoleAuditor:
		return false, string(need) + "s only"
	case have == RoleAgent && need == RoleAuditor:
		return false, "agents use the agents' API only"
	case have == RoleAuditor && method != http.MethodGet && method != http.MethodHead:
		return false, "auditors read only"
	}
	return true, ""
}

// auth requires a signed-in user allowed on the route. A request without
// credentials is answered at once: bcrypt runs only when a password is
// sent, and failed sign-ins from one address meet growing delays (the
// public form's limiter, shared by every process).
func (h *Handler) auth(need Role, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, pass, ok := r.BasicAuth()
		if !ok {
			h.challenge(w)
			return
		}
		u, err := h.signIn(r, name, pass)
		if err != nil {
			var wait *retryError
			if errors.As(err, &wait) {
				w.Header().Set("Retry-After", strconv.Itoa(wait.seconds))
				http.Error(w, "too many failed sign-ins; try again later", http.StatusTooManyRequests)
				return
			}
			if !errors.Is(err, errBadCredentials) {
				h.fail(w, err)
				return
			}
			h.challenge(w)
			return
		}
		if ok, why := may(u.Role, need, r.Method); !ok {
			http.Error(w, why, http.StatusForbidden)
			return
		}
		h.log.Info("ops access", "user", u.Name, "role", u.Role, "method", r.Method, "path", r.URL.Path)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, u)))
	})
}

func (h *Handler) challenge(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Basic realm="ens ops", charset="UTF-8"`)
	http.Error(w, "authentication required", http.StatusUnauthorized)
}

var errBadCredentials = errors.New("unknown user or wrong password")

type retryError struct{ seconds int }

func (e *retryError) Error() string { return "too many failed sign-ins" }

// signIn checks a name and password, counted against the sign-in limits
// of the client's address before bcrypt runs; a success takes its attempt
// back.
func (h *Handler) signIn(r *http.Request, name, pass string) (User, error) {
	key := "ops-login:" + h.clientAddr(r)
	wait, err := h.limiter.Reserve(r.Context(), key)
	if err != nil {
		return User{}, err
	}
	if wait > 0 {
		return User{}, &retryError{seconds: int(wait.Seconds()) + 1}
	}
	u, known := h.users[name]
	if !known { // spend the same time whether the user exists
		bcrypt.CompareHashAndPassword(dummyHash, []byte(pass)) //nolint:errcheck
		return User{}, errBadCredentials
	}
	if bcrypt.CompareHashAndPassword(u.Hash, []byte(pass)) != nil {
		h.log.Warn("ops sign-in failed", "user", name)
		return User{}, errBadCredentials
	}
	if err := h.limiter.Refund(context.WithoutCancel(r.Context()), key); err != nil {
		h.log.Error("ops sign-in limits", "error", err)
	}
	return u, nil
}
