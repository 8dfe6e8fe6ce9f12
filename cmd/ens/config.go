package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ens-sante/ens/jobs"
	"github.com/ens-sante/ens/notify"
	"github.com/ens-sante/ens/optout"
	"github.com/ens-sante/ens/provisioning"
	"github.com/ens-sante/ens/provisioning/notice"
	"github.com/ens-sante/ens/provisioning/window"
)

// config is every variable ens reads, parsed once when a command starts.
// A value that does not parse, or is out of range, stops the command with
// exit 2 and a message naming the variable; flags that share a variable's
// meaning start from its value and override it.
type config struct {
	DatabaseURL string
	VarDir      string
	LogFormat   string
	AppRole     string
	Operator    string

	CodeKey      optout.Key // ENS_CODE_KEY or the file ENS_CODE_KEY_FILE names; nil: not set
	CodeKeyFile  string
	AuditKey     []byte // ENS_AUDIT_KEY or ENS_AUDIT_KEY_FILE; nil: the audit chain is not keyed
	AuditKeyFile string
	// AuditPreviousKeys are the audit keys rotated out, oldest first
	// (ENS_AUDIT_PREVIOUS_KEYS_FILE): the events they chained still verify.
	AuditPreviousKeys     [][]byte
	AuditPreviousKeysFile string

	SMTPURL          string
	MailFrom         string
	BounceAddress    string
	DKIMKeyFile      string
	DKIMSelector     string
	EmailGiveUpAfter time.Duration
	ActivationGrace  time.Duration
	SMTPConnections  int
	SMTPRate         float64
	NoticeWorkers    int
	LetterWorkers    int
	RetryBase        time.Duration
	DBWait           time.Duration
	CPUProfile       string
	HealthAddr       string
	AgentDailyCap    int
	EnrolDailyCap    int
	Enrol            bool

	LettersDir      string
	PostDelay       time.Duration
	PostingSLA      time.Duration
	Delivery        provisioning.Delivery
	LetterRetention time.Duration
	RefusalAddress  string
	DPOContact      string
	DataController  string

	Addr           string
	OpsAddr        string
	DBConns        int
	TrustedProxies []netip.Prefix
	MetricsAllow   []netip.Prefix
	OpsUsersFile   string
	OpsUsers       string

	PlatformURL string
	PlatformKey []byte // ENS_PLATFORM_KEY: signs the pushes of the change feed

	LetterPostage float64
	EmailRate     float64
	LetterRate    float64

	sources map[string]string // variable -> "environment" or "default"
}

// variable is one setting: its environment variable, the flag that
// overrides it (if any), its default, what it means, an example of a valid
// value, whether its value is secret, and how it is parsed into a config.
type variable struct {
	name, flag, def, help, example string
	secret                         bool
	set                            func(c *config, v string) error
	get                            func(c *config) string
}

// variables is the one table of what ens reads from its environment: the
// configuration documentation (docs/configuration.md) is held against it.
var variables = []variable{
	str("DATABASE_URL", "--database-url", "", "PostgreSQL URL: the owner role's for `ens migrate`, the application role's for every other command", "postgres://ens_app@db.internal/ens",
		func(c *config) *string { return &c.DatabaseURL }).masked(maskURL),
	str("ENS_VAR_DIR", "--var-dir", "var", "local state: the demo's private cluster, letters, outbox, secrets", "/var/lib/ens", func(c *config) *string { return &c.VarDir }),
	oneOf("ENS_LOG_FORMAT", "--log-format", "text", "log format", []string{"text", "json"}, func(c *config) *string { return &c.LogFormat }),
	str("ENS_APP_ROLE", "--app-role", provisioning.DefaultAppRole, "the application role `ens migrate` creates and grants", "ens_app", func(c *config) *string { return &c.AppRole }),
	str("ENS_OPERATOR", "", "$USER", "the operator's name in the audit log", "alice", func(c *config) *string { return &c.Operator }),
	{name: "ENS_CODE_KEY", def: "", help: "the secret codes derive from: hex, at least 32 bytes", example: strings.Repeat("ab", 32), secret: true,
		set: func(*config, string) error { return nil }, get: func(c *config) string { return keyState(c.CodeKey, c.CodeKeyFile) }},
	{name: "ENS_CODE_KEY_FILE", def: "", help: "a file holding ENS_CODE_KEY (mode 0600)", example: "/etc/ens/code.key",
		set: func(c *config, v string) error { c.CodeKeyFile = v; return nil }, get: func(c *config) string { return c.CodeKeyFile }},
	{name: "ENS_AUDIT_KEY", def: "", help: "the audit chain's HMAC key, kept outside the database: hex, at least 32 bytes", example: strings.Repeat("cd", 32), secret: true,
		set: func(*config, string) error { return nil }, get: func(c *config) string { return keyState(c.AuditKey, c.AuditKeyFile) }},
	{name: "ENS_AUDIT_KEY_FILE", def: "", help: "a file holding ENS_AUDIT_KEY (mode 0600)", example: "/etc/ens/audit.key",
		set: func(c *config, v string) error { c.AuditKeyFile = v; return nil }, get: func(c *config) string { return c.AuditKeyFile }},
	{name: "ENS_AUDIT_PREVIOUS_KEYS_FILE", def: "", help: "the audit keys rotated out, hex, one a line, oldest first (mode 0600): the events they chained still verify",
		example: "/etc/ens/audit-previous.keys",
		set:     func(c *config, v string) error { c.AuditPreviousKeysFile = v; return nil }, get: func(c *config) string { return c.AuditPreviousKeysFile }},

	str("SMTP_URL", "", "", "the relay: smtp://user:pass@host:port?tls=none|starttls|tls (default starttls)", "smtp://relay.internal:587",
		func(c *config) *string { return &c.SMTPURL }).masked(maskURL),
	str("ENS_MAIL_FROM", "", "", "sender address (From:); its domain is the Message-ID's and the DKIM signature's", "Mon espace santé <ne-pas-repondre@monespacesante.fr>", func(c *config) *string { return &c.MailFrom }),
	str("ENS_BOUNCE_ADDRESS", "", "", "base of the envelope sender (default bounces@ the sender's domain)", "bounces@monespacesante.fr", func(c *config) *string { return &c.BounceAddress }),
	str("ENS_DKIM_KEY_FILE", "", "", "PEM private key (RSA or Ed25519) that signs every notice", "/etc/ens/dkim.pem", func(c *config) *string { return &c.DKIMKeyFile }),
	str("ENS_DKIM_SELECTOR", "", "", "the DKIM selector", "ens2027", func(c *config) *string { return &c.DKIMSelector }),
	duration("ENS_EMAIL_GIVE_UP_AFTER", "", notice.DefaultEmailGiveUpAfter, 1, "how long a recipient's temporary refusals may last before their email falls back to a letter", func(c *config) *time.Duration { return &c.EmailGiveUpAfter }),
	duration("ENS_ACTIVATION_GRACE", "", window.DefaultActivationGrace, 0, "how long an account waits after its deadline before it is activated: a refusal postmarked in time, a returned letter, still count", func(c *config) *time.Duration { return &c.ActivationGrace }),
	integer("ENS_SMTP_CONNECTIONS", "--smtp-connections", 4, 1, 1000, "SMTP connections kept open per worker", func(c *config) *int { return &c.SMTPConnections }),
	number("ENS_SMTP_RATE", "--smtp-rate", 0, "messages per second per worker, 0: no cap", func(c *config) *float64 { return &c.SMTPRate }),
	integer("ENS_NOTICE_WORKERS", "--notice-workers", jobs.DefaultNoticeWorkers, 1, 1000, "notice chunks worked at once per worker", func(c *config) *int { return &c.NoticeWorkers }),
	integer("ENS_LETTER_WORKERS", "--letter-workers", jobs.DefaultLetterWorkers, 1, 100, "letter batches rendered at once per worker", func(c *config) *int { return &c.LetterWorkers }),
	duration("ENS_RETRY_BASE", "", 10*time.Second, 1, "first retry delay of a failed job, doubling each attempt", func(c *config) *time.Duration { return &c.RetryBase }),
	duration("ENS_DB_WAIT", "", 5*time.Minute, 0, "how long `ens worker --until-idle` waits out an unreachable database", func(c *config) *time.Duration { return &c.DBWait }),
	str("ENS_HEALTH_ADDR", "--health-addr", "", "ens worker serves /healthz, /readyz and its /metrics there; empty: off", "127.0.0.1:9090", func(c *config) *string { return &c.HealthAddr }),
	str("ENS_CPU_PROFILE", "", "", "`ens worker` writes its CPU profile there", "/tmp/worker.pprof", func(c *config) *string { return &c.CPUProfile }),
	integer("ENS_ENROL_DAILY_CAP", "", 10_000, 0, 10_000_000, "accounts continuous enrolment creates a day at most (0: no cap); the rest wait for the next day's run", func(c *config) *int { return &c.EnrolDailyCap }),
	{name: "ENS_ENROL", def: "off", help: "on: continuous enrolment is turned on by `ens worker` and `ens enrol`", example: "on",
		set: func(c *config, v string) error {
			switch v {
			case "on":
				c.Enrol = true
			case "off":
				c.Enrol = false
			default:
				return errors.New("must be on or off")
			}
			return nil
		}, get: func(c *config) string { return map[bool]string{true: "on", false: "off"}[c.Enrol] }},

	str("ENS_LETTERS_DIR", "", "$ENS_VAR_DIR/letters", "where letter PDFs and manifests go", "/srv/ens/letters", func(c *config) *string { return &c.LettersDir }),
	duration("ENS_POST_DELAY", "--post-delay", 5*24*time.Hour, 0, "print-and-post delay counted into the date a letter prints: a batch must be posted within it", func(c *config) *time.Duration { return &c.PostDelay }),
	duration("ENS_POSTING_SLA", "", notice.DefaultPostingSLA, 1, "a batch the printer has not acknowledged this long after rendering is overdue", func(c *config) *time.Duration { return &c.PostingSLA }),
	duration("ENS_DELIVERY_DELAY", "", provisioning.DefaultDelivery.Metropolitan, 0, "La Poste's delivery in metropolitan France, counted into the date a letter prints",
		func(c *config) *time.Duration { return &c.Delivery.Metropolitan }),
	duration("ENS_DELIVERY_DELAY_OVERSEAS", "", provisioning.DefaultDelivery.Overseas, 0, "La Poste's delivery to the overseas departments and collectivities (97x, 98x)",
		func(c *config) *time.Duration { return &c.Delivery.Overseas }),
	duration("ENS_DELIVERY_DELAY_ABROAD", "", provisioning.DefaultDelivery.Abroad, 0, "La Poste's delivery abroad",
		func(c *config) *time.Duration { return &c.Delivery.Abroad }),
	str("ENS_REFUSAL_ADDRESS", "", "", "the postal address for refusals by post, on one line, printed on every letter (`ens worker` needs it)",
		"Mon espace santé – Oppositions, CPAM de Paris, 75948 Paris Cedex 19", func(c *config) *string { return &c.RefusalAddress }),
	str("ENS_DPO_CONTACT", "", "", "how to reach the data protection officer, printed on every letter (`ens worker` needs it)",
		"dpo@assurance-maladie.fr ou DPO, 50 avenue du Professeur André Lemierre, 75986 Paris Cedex 20", func(c *config) *string { return &c.DPOContact }),
	str("ENS_DATA_CONTROLLER", "", notify.DefaultDataController, "the controllers of the processing, as letters name them", notify.DefaultDataController,
		func(c *config) *string { return &c.DataController }),
	duration("ENS_LETTER_RETENTION", "", notice.DefaultLetterRetention, 1, "a posted batch's PDF is deleted this long after its posting day", func(c *config) *time.Duration { return &c.LetterRetention }),

	integer("ENS_AGENT_DAILY_CAP", "", 200, 0, 1_000_000, "oppositions without the code one agent may record a day (0: no cap); over it, 429 naming the cap", func(c *config) *int { return &c.AgentDailyCap }),
	str("ENS_ADDR", "--addr", "127.0.0.1:8080", "listen address of the public site", "127.0.0.1:8080", func(c *config) *string { return &c.Addr }),
	str("ENS_OPS_ADDR", "--ops-addr", "127.0.0.1:8081", "listen address of /ops/ and /metrics (internal network only; empty: off)", "10.0.0.5:8081", func(c *config) *string { return &c.OpsAddr }),
	integer("ENS_DB_CONNS", "--db-conns", 0, 0, 1000, "database connections of the public site (0: two per CPU the process may use)", func(c *config) *int { return &c.DBConns }),
	prefixes("ENS_TRUSTED_PROXIES", "reverse proxies whose X-Forwarded-For names the client", func(c *config) *[]netip.Prefix { return &c.TrustedProxies }),
	prefixes("ENS_METRICS_ALLOW", "networks that may scrape /metrics without signing in", func(c *config) *[]netip.Prefix { return &c.MetricsAllow }),
	str("ENS_OPS_USERS_FILE", "", "", "the ops area's users, one name:operator|auditor|agent:bcrypt-hash a line", "/etc/ens/ops-users", func(c *config) *string { return &c.OpsUsersFile }),
	str("ENS_OPS_USERS", "", "", "the same users inline, newline- or comma-separated", "alice:operator:$2a$10$…", func(c *config) *string { return &c.OpsUsers }).masked(maskUsers),

	str("ENS_PLATFORM_URL", "", "", "where ens worker pushes the change feed (signed batches, at least once, in order); empty: no push", "https://plateforme.internal/ens/changes",
		func(c *config) *string { return &c.PlatformURL }).masked(maskURL),
	{name: "ENS_PLATFORM_KEY", help: "signs each push (HMAC-SHA256): hex, at least 32 bytes, shared with the platform", example: strings.Repeat("ef", 32), secret: true,
		set: func(c *config, v string) error {
			if v == "" {
				return nil
			}
			k, err := hex.DecodeString(strings.TrimSpace(v))
			if err != nil || len(k) < 32 {
				return errors.New("must be hex, at least 32 bytes")
			}
			c.PlatformKey = k
			return nil
		}, get: func(c *config) string { return keyState(c.PlatformKey, "") }},
	number("ENS_LETTER_POSTAGE", "", 0.80, "euros per letter, for a wave's dry run", func(c *config) *float64 { return &c.LetterPostage }),
	number("ENS_EMAIL_RATE", "", 1000, "emails per second, for a wave's dry run", func(c *config) *float64 { return &c.EmailRate }),
	number("ENS_LETTER_RATE", "", 2500, "letters rendered per second, for a wave's dry run", func(c *config) *float64 { return &c.LetterRate }),
}

// loadConfig reads every variable through getenv. It reports every value
// refused, each with the variable's name and an example.
func loadConfig(getenv func(string) string) (*config, error) {
	c := &config{sources: map[string]string{}}
	var errs []error
	for _, v := range variables {
		val, source := getenv(v.name), "environment"
		if val == "" {
			val, source = v.def, "default"
		}
		c.sources[v.name] = source
		if source == "default" && strings.HasPrefix(val, "$") {
			continue // derived below
		}
		if err := v.set(c, val); err != nil {
			errs = append(errs, fmt.Errorf("%s: %v (for example %s=%s)", v.name, err, v.name, v.example))
		}
	}
	if c.Operator == "" {
		c.Operator = getenv("USER")
	}
	if c.Operator == "" {
		c.Operator = "operator"
	}
	if c.DBConns == 0 {
		c.DBConns = 2 * runtime.GOMAXPROCS(0)
	}
	if c.PlatformURL != "" && c.PlatformKey == nil {
		errs = append(errs, errors.New("ENS_PLATFORM_URL is set without ENS_PLATFORM_KEY: every push must be signed (for example ENS_PLATFORM_KEY=$(openssl rand -hex 32))"))
	}
	if err := c.setCodeKey(getenv("ENS_CODE_KEY"), c.CodeKeyFile); err != nil {
		errs = append(errs, err)
	}
	if err := c.setAuditKey(getenv("ENS_AUDIT_KEY"), c.AuditKeyFile); err != nil {
		errs = append(errs, err)
	}
	if err := c.setPreviousAuditKeys(); err != nil {
		errs = append(errs, err)
	}
	return c, errors.Join(errs...)
}

// letterInfo is what every letter prints besides its notice, or which
// variable is missing.
func (c *config) letterInfo() (notify.LetterInfo, error) {
	info := notify.LetterInfo{RefusalAddress: c.RefusalAddress, DPOContact: c.DPOContact, DataController: c.DataController}
	var errs []error
	for _, v := range variables {
		if (v.name == "ENS_REFUSAL_ADDRESS" || v.name == "ENS_DPO_CONTACT") && strings.TrimSpace(v.get(c)) == "" {
			errs = append(errs, fmt.Errorf("%s is not set: letters cannot be printed without it (for example %s=%q)", v.name, v.name, v.example))
		}
	}
	return info, errors.Join(errs...)
}

// lettersDir is ENS_LETTERS_DIR, or letters under the var directory.
func (c *config) lettersDir() string {
	if c.LettersDir != "" {
		return c.LettersDir
	}
	return c.VarDir + "/letters"
}

// codeKey is the code key, or why there is none.
func (c *config) codeKey() (optout.Key, error) {
	if c.CodeKey == nil {
		return nil, errors.New("no code key: set ENS_CODE_KEY (hex, ≥ 32 bytes) or ENS_CODE_KEY_FILE")
	}
	return c.CodeKey, nil
}

func (c *config) setCodeKey(value, file string) error {
	v, err := secretValue("ENS_CODE_KEY", value, file)
	if err != nil || v == "" {
		return err
	}
	k, err := optout.ParseKey(v)
	if err != nil {
		return fmt.Errorf("ENS_CODE_KEY: %v (for example ENS_CODE_KEY=$(openssl rand -hex 32))", err)
	}
	c.CodeKey = k
	return nil
}

func (c *config) setAuditKey(value, file string) error {
	v, err := secretValue("ENS_AUDIT_KEY", value, file)
	if err != nil || v == "" {
		return err
	}
	k, err := hex.DecodeString(strings.TrimSpace(v))
	if err != nil || len(k) < 32 {
		return errors.New("ENS_AUDIT_KEY: must be hex, at least 32 bytes (for example ENS_AUDIT_KEY=$(openssl rand -hex 32))")
	}
	c.AuditKey = k
	return nil
}

// setPreviousAuditKeys reads ENS_AUDIT_PREVIOUS_KEYS_FILE: hex keys, one
// a line, oldest first.
func (c *config) setPreviousAuditKeys() error {
	if c.AuditPreviousKeysFile == "" {
		return nil
	}
	v, err := secretValue("ENS_AUDIT_PREVIOUS_KEYS", "", c.AuditPreviousKeysFile)
	if err != nil {
		return err
	}
	for i, line := range strings.Fields(v) {
		k, err := hex.DecodeString(line)
		if err != nil || len(k) < 32 {
			return fmt.Errorf("ENS_AUDIT_PREVIOUS_KEYS_FILE: key %d is not hex of at least 32 bytes", i+1)
		}
		c.AuditPreviousKeys = append(c.AuditPreviousKeys, k)
	}
	return nil
}

// secretValue is a key given in name, or else read from file: a file that
// others may read is refused, with the chmod that mends it.
func secretValue(name, value, file string) (string, error) {
	if value != "" || file == "" {
		return value, nil
	}
	st, err := os.Stat(file)
	if err != nil {
		return "", fmt.Errorf("%s_FILE: %w", name, err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%s_FILE: %s is readable by others (mode %04o): run chmod 600 %s", name, file, st.Mode().Perm(), file)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("%s_FILE: %w", name, err)
	}
	return string(b), nil
}

func keyState(k []byte, file string) string {
	switch {
	case k == nil:
		return ""
	case file != "":
		return fmt.Sprintf("set from %s (%d bytes)", file, len(k))
	default:
		return fmt.Sprintf("set (%d bytes)", len(k))
	}
}

// The constructors of the table's rows, by type.

func str(name, flag, def, help, example string, field func(*config) *string) variable {
	return variable{name: name, flag: flag, def: def, help: help, example: example,
		set: func(c *config, v string) error { *field(c) = v; return nil },
		get: func(c *config) string { return *field(c) }}
}

// masked makes a variable's shown value pass through mask.
func (v variable) masked(mask func(string) string) variable {
	get := v.get
	v.get = func(c *config) string { return mask(get(c)) }
	return v
}

func oneOf(name, flag, def, help string, allowed []string, field func(*config) *string) variable {
	return variable{name: name, flag: flag, def: def, help: help + ": " + strings.Join(allowed, " or "), example: allowed[len(allowed)-1],
		set: func(c *config, v string) error {
			for _, a := range allowed {
				if v == a {
					*field(c) = v
					return nil
				}
			}
			return fmt.Errorf("%q is not %s", v, strings.Join(allowed, " or "))
		},
		get: func(c *config) string { return *field(c) }}
}

func duration(name, flag string, def, least time.Duration, help string, field func(*config) *time.Duration) variable {
	return variable{name: name, flag: flag, def: provisioning.FormatDuration(def), help: help, example: provisioning.FormatDuration(max(def, 5*24*time.Hour)),
		set: func(c *config, v string) error {
			d, err := provisioning.ParseDuration(v)
			if err != nil {
				return err
			}
			if d < least {
				return fmt.Errorf("must be at least %s", provisioning.FormatDuration(least))
			}
			*field(c) = d
			return nil
		},
		get: func(c *config) string { return provisioning.FormatDuration(*field(c)) }}
}

func integer(name, flag string, def, least, most int, help string, field func(*config) *int) variable {
	return variable{name: name, flag: flag, def: strconv.Itoa(def), help: help, example: strconv.Itoa(max(def, least, 4)),
		set: func(c *config, v string) error {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				return fmt.Errorf("%q is not a whole number", v)
			}
			if n < least || n > most {
				return fmt.Errorf("%d is out of range %d–%d", n, least, most)
			}
			*field(c) = n
			return nil
		},
		get: func(c *config) string { return strconv.Itoa(*field(c)) }}
}

func number(name, flag string, def float64, help string, field func(*config) *float64) variable {
	return variable{name: name, flag: flag, def: strconv.FormatFloat(def, 'f', -1, 64), help: help, example: "250",
		set: func(c *config, v string) error {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return fmt.Errorf("%q is not a number", v)
			}
			if f < 0 {
				return fmt.Errorf("%v is negative", f)
			}
			*field(c) = f
			return nil
		},
		get: func(c *config) string { return strconv.FormatFloat(*field(c), 'f', -1, 64) }}
}

func prefixes(name, help string, field func(*config) *[]netip.Prefix) variable {
	return variable{name: name, help: help + " (CIDRs or addresses, comma-separated)", example: "10.0.0.0/8,192.0.2.7",
		set: func(c *config, v string) error {
			ps, err := parsePrefixes(v)
			*field(c) = ps
			return err
		},
		get: func(c *config) string {
			var s []string
			for _, p := range *field(c) {
				s = append(s, p.String())
			}
			return strings.Join(s, ",")
		}}
}

// parsePrefixes reads a list of CIDRs or addresses, comma-separated.
func parsePrefixes(v string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(v, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			a, aerr := netip.ParseAddr(f)
			if aerr != nil {
				return nil, fmt.Errorf("%q is neither a CIDR nor an address", f)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p)
	}
	return out, nil
}

// maskURL hides a URL's password.
func maskURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// maskUsers keeps the ops users' names and roles, never their hashes.
func maskUsers(s string) string {
	var out []string
	for _, line := range strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == ',' }) {
		if f := strings.SplitN(strings.TrimSpace(line), ":", 3); len(f) == 3 {
			out = append(out, f[0]+":"+f[1]+":…")
		}
	}
	return strings.Join(out, " ")
}

// durationFlag is a flag in the one duration syntax (5d, 72h, 90s).
type durationFlag time.Duration

func (d *durationFlag) String() string { return provisioning.FormatDuration(time.Duration(*d)) }
func (d *durationFlag) Type() string   { return "duration" }
func (d *durationFlag) Set(s string) error {
	v, err := provisioning.ParseDuration(s)
	*d = durationFlag(v)
	return err
}

// setting is one line of `ens config`.
type setting struct {
	Variable string `json:"variable"`
	Flag     string `json:"flag,omitempty"`
	Value    string `json:"value"`
	Source   string `json:"source"` // environment, flag or default
}

func (a *app) configCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Print the configuration this machine would run with, secrets masked",
		Long: "Print every variable ens reads (docs/configuration.md), its effective value and where it came from.\n" +
			"Keys and passwords are never printed: a key shows as set or not.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var out []setting
			for _, v := range variables {
				s := setting{Variable: v.name, Flag: v.flag, Value: v.get(a.cfg), Source: a.cfg.sources[v.name]}
				if v.flag != "" && cmd.Root().PersistentFlags().Changed(strings.TrimPrefix(v.flag, "--")) {
					s.Source = "flag"
				}
				out = append(out, s)
			}
			if asJSON {
				return a.printJSON(out)
			}
			for _, s := range out {
				fmt.Fprintf(a.stdout, "%-24s %-32s %s\n", s.Variable, s.Value, s.Source)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}
