package jobs

import (
	"time"

	"github.com/ens-sante/ens/notify"
	"github.com/ens-sante/ens/optout"
	"github.com/ens-sante/ens/provisioning"
)

// noticeOf turns a target into what notify renders, with the lookup hash of
// its code (nil without one); the code is derived here, in memory, and goes
// nowhere else.
func noticeOf(t *provisioning.Target, key optout.Key, deadline time.Time) (*notify.Notice, []byte) {
	n := &notify.Notice{ID: t.NoticeID, AccountID: t.AccountID, Kind: notify.Kind(t.Kind), Topic: t.Topic, ChangedAt: t.ChangedAt, Channel: notify.Channel(t.Channel),
		FirstName: t.FirstName, LastName: t.LastName, Female: t.NIR.Female(), ForGuardian: t.ForGuardian,
		Deadline: deadline, Email: t.Email, AddressLines: t.Lines, Postcode: t.Postcode, City: t.City,
		Country: t.Country, Department: t.Department}
	if t.Kind != provisioning.NoticeOpposition && t.Kind != provisioning.NoticeResend && t.Kind != provisioning.NoticeCopy && t.Kind != provisioning.NoticeExtension {
		return n, nil
	}
	code := key.Derive(t.AccountID)
	n.Code = code.String()
	return n, key.LookupHash(code)
}
