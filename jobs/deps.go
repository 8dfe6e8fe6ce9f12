package jobs

import (
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ens-sante/ens/notify"
	"github.com/ens-sante/ens/optout"
	"github.com/ens-sante/ens/provisioning"
	"github.com/ens-sante/ens/provisioning/notice"
)

// Deps are what the workers need.
type Deps struct {
	Pool       *pgxpool.Pool
	Mailer     *notify.Mailer
	Key        optout.Key
	LettersDir string
	// Delivery is La Poste's delay by destination, counted into the date a
	// letter prints.
	Delivery provisioning.Delivery
	// Letter is what every letter prints besides its notice: the address
	// for refusals by post, the information on personal data.
	Letter    notify.LetterInfo
	PostDelay time.Duration
	// LetterRetention: a posted batch's PDF is deleted this long after its
	// posting day (default provisioning.DefaultLetterRetention).
	LetterRetention time.Duration
	// PostingSLA: a batch not acknowledged this long after rendering is
	// overdue; its PDF is deleted LetterRetention later (default
	// notice.DefaultPostingSLA).
	PostingSLA time.Duration
	// SettleEvery: each accepted email is recorded at once, so a crash
	// re-sends at most the messages in flight (same Message-ID, same code);
	// the accounts' move to notified and the audit event follow in groups of
	// this many, or when the chunk ends. Default DefaultSettleEvery.
	SettleEvery int
	// GiveUpAfter: a recipient's temporary refusals fall back to a letter
	// once they have lasted this long (default
	// provisioning.DefaultEmailGiveUpAfter). A failure of the relay itself
	// never does: sending pauses until it is back.
	GiveUpAfter time.Duration
	// ChunkTimeout bounds a notice chunk (default DefaultChunkTimeout; the
	// CLI raises it with a low ENS_SMTP_RATE), RenderTimeout a letter batch
	// (default DefaultRenderTimeout); MaxLetterWait is how long a letter
	// waits for its wave's other chunks (default DefaultMaxLetterWait).
	ChunkTimeout, RenderTimeout, MaxLetterWait time.Duration
	Clock                                      provisioning.Clock
	// ActivationGrace: an account waits this long after its deadline before
	// the window sweep activates it (ENS_ACTIVATION_GRACE; zero: at once).
	ActivationGrace time.Duration
	// EnrolDailyCap bounds the accounts continuous enrolment creates a day
	// (ENS_ENROL_DAILY_CAP; 0: no cap).
	EnrolDailyCap int64
	// Metrics measure the workers' jobs, emails and letters; nil: none.
	Metrics *Metrics
	// Platform receives the change feed (ENS_PLATFORM_URL); nil: no push.
	Platform *notify.Platform
	// AuditKey keys the audit events the workers append (ENS_AUDIT_KEY).
	AuditKey []byte
	Logger   *slog.Logger
}

// Store is the workers' database, clock and audit key, as the capabilities
// take them.
func (d *Deps) Store() *provisioning.Store {
	return &provisioning.Store{Pool: d.Pool, Clock: d.Clock, AuditKey: d.AuditKey}
}

// DefaultChunkTimeout bounds a notice chunk: 20 s waiting for a failed
// relay, then 500 emails over a few connections, many times over.
const DefaultChunkTimeout = time.Minute

func (d *Deps) chunkTimeout() time.Duration {
	if d.ChunkTimeout > 0 {
		return d.ChunkTimeout
	}
	return DefaultChunkTimeout
}

// DefaultMaxLetterWait is how long a letter may wait for its wave's other
// chunks before it is rendered anyway.
const DefaultMaxLetterWait = time.Minute

func (d *Deps) maxLetterWait() time.Duration {
	if d.MaxLetterWait > 0 {
		return d.MaxLetterWait
	}
	return DefaultMaxLetterWait
}

func (d *Deps) giveUpAfter() time.Duration {
	if d.GiveUpAfter > 0 {
		return d.GiveUpAfter
	}
	return notice.DefaultEmailGiveUpAfter
}

// codeHash is the lookup hash of an account's opposition code.
func (d *Deps) codeHash(accountID int64) []byte {
	return d.Key.LookupHash(d.Key.Derive(accountID))
}

// DefaultSettleEvery is Deps.SettleEvery's default.
const DefaultSettleEvery = 100
