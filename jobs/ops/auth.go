package ops

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

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

// signIn checks a name and password. Credentials verified within the last
// minute are recognised by a keyed hash kept in memory, without bcrypt nor
// a database round trip: a signed-in operator's every request does not
// cost the public form a core's 60 ms. Anything else is counted against
// the sign-in limits of the client's address and of the user name before
// bcrypt runs (a success takes its attempts back); every failed or limited
// sign-in is logged with the client address and the user name, never the
// password.
func (h *Handler) signIn(r *http.Request, name, pass string) (User, error) {
	if u, ok := h.users[name]; ok && h.signIns.recent(name, pass) {
		return u, nil
	}
	client := h.clientAddr(r)
	// The user name's key is its hash: whatever bytes a name holds, the
	// limits table stores them.
	nameSum := sha256.Sum256([]byte(name))
	keys := []string{"ops-login:" + client, "ops-login-user:" + hex.EncodeToString(nameSum[:8])}
	wait, err := h.limiter.Reserve(r.Context(), keys...)
	if err != nil {
		return User{}, err
	}
	if wait > 0 {
		h.log.Warn("ops sign-in limited", "user", name, "client", client, "retry_after_s", int(wait.Seconds())+1)
		return User{}, &retryError{seconds: int(wait.Seconds()) + 1}
	}
	u, known := h.users[name]
	if !known { // spend the same time whether the user exists
		bcrypt.CompareHashAndPassword(dummyHash, []byte(pass)) //nolint:errcheck
		h.log.Warn("ops sign-in failed", "user", name, "client", client, "reason", "unknown user")
		return User{}, errBadCredentials
	}
	if bcrypt.CompareHashAndPassword(u.Hash, []byte(pass)) != nil {
		h.log.Warn("ops sign-in failed", "user", name, "client", client, "reason", "wrong password")
		return User{}, errBadCredentials
	}
	if err := h.limiter.Refund(context.WithoutCancel(r.Context()), keys...); err != nil {
		h.log.Error("ops sign-in limits", "error", err)
	}
	h.signIns.remember(name, pass)
	return u, nil
}

// signInTTL is how long verified credentials are recognised without bcrypt.
const signInTTL = time.Minute

// signInCache remembers credentials verified recently, as an HMAC under a
// key drawn at start (never the password), for signInTTL.
type signInCache struct {
	key  []byte
	mu   sync.Mutex
	seen map[[sha256.Size]byte]time.Time
	now  func() time.Time
}

func newSignInCache() *signInCache {
	key := make([]byte, 32)
	rand.Read(key) //nolint:errcheck // crypto/rand never fails on supported platforms
	return &signInCache{key: key, seen: map[[sha256.Size]byte]time.Time{}, now: time.Now}
}

func (c *signInCache) sum(name, pass string) [sha256.Size]byte {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte(name))
	m.Write([]byte{0})
	m.Write([]byte(pass))
	var out [sha256.Size]byte
	copy(out[:], m.Sum(nil))
	return out
}

func (c *signInCache) recent(name, pass string) bool {
	k := c.sum(name, pass)
	c.mu.Lock()
	defer c.mu.Unlock()
	at, ok := c.seen[k]
	return ok && c.now().Sub(at) < signInTTL
}

func (c *signInCache) remember(name, pass string) {
	k := c.sum(name, pass)
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.seen) > 10_000 { // a bounded map: forget what expired
		for s, at := range c.seen {
			if now.Sub(at) >= signInTTL {
				delete(c.seen, s)
			}
		}
	}
	c.seen[k] = now
}
