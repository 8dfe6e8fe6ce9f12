package provisioning

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// NoticeKind and channel names, as stored.
const (
	NoticeOpposition  = "opposition"
	NoticeInformation = "information"
	NoticeExtension   = "extension"
	// NoticeResend is a code sent again at its holder's request (ResendCode).
	NoticeResend = "resend"
	// NoticeCopy is the curator's copy of the notice of an adult under
	// curatelle, with the same code and the account's deadline.
	NoticeCopy = "copy"
	// NoticeChange tells a person of a change to their account (Change*
	// topics): no code, no deadline.
	NoticeChange  = "change"
	ChannelEmail  = "email"
	ChannelLetter = "letter"
)

// The topics of change notices: what changed, told to the person so that
// nobody changes their account behind their back.
const (
	// ChangeOppositionWithdrawn: an opposition withdrawn (with the code and
	// birth date, or by an agent).
	ChangeOppositionWithdrawn = "opposition_withdrawn"
	// ChangeActivatedByHolder: the account activated before its window ended.
	ChangeActivatedByHolder = "activated_by_holder"
	// ChangeOpposedByAgent: an opposition an agent recorded without the code.
	ChangeOpposedByAgent = "opposed_by_agent"
	// ChangeReinstated: an opposed or closed account reinstated.
	ChangeReinstated = "reinstated"
	// ChangeCameOfAge: a profile created while its holder was a minor, told
	// to them at 18.
	ChangeCameOfAge = "came_of_age"
)

// Target is a notice to dispatch with what rendering it needs: the holder's
// name, and the contact of whoever receives it (the representative for a
// minor). It holds personal data: keep it in memory, never log it.
type Target struct {
	NoticeID    int64
	AccountID   int64
	Kind        string
	Topic       string    // a change notice's
	ChangedAt   time.Time // when a change notice's change was made
	Channel     string
	Seq         int
	FirstName   string
	LastName    string
	NIR         NIR
	ForGuardian bool
	Email       string
	Lines       [4]string
	Postcode    string
	City        string
	Country     string
	Department  string
	Deadline    *time.Time
	Attempts    int
	// FirstFailedAt is when the recipient first deferred this email (nil: never).
	FirstFailedAt *time.Time
	WaveID        int64
	State         State // the account's
}

// LetterFunc queues letter rendering for a wave's departments inside tx.
type LetterFunc func(ctx context.Context, tx pgx.Tx, waveID int64, departments []string) error

// Deliverable reports whether the target's postal address is complete
// enough to post a letter to, by the rule the import applies
// (Person.PostalComplete).
func (t *Target) Deliverable() bool {
	return PostalComplete(t.Lines, t.Postcode, t.City, t.Country)
}

// ChannelAgent is how a call-centre agent's oppositions are recorded.
const ChannelAgent = "agent"
