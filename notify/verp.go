package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
)

// Every notice's email carries two keyed marks, so that a bounce report is
// believed only when it comes back for a message we sent:
//
//   - its envelope sender (VERP, where MTAs send delivery reports) is
//     bounces+<notice id>-<tag>@domain, built from ENS_BOUNCE_ADDRESS;
//   - its Message-ID is <notice id>.<tag>@domain, the same on every retry of
//     the notice (a duplicate is recognisable) and not guessable.
//
// A tag is an HMAC of the notice id under the mail key: without the key,
// nobody can name a notice in a forged report.

// tagLen is the length of a tag in hex digits (64 bits).
const tagLen = 16

func mailTag(key []byte, purpose string, noticeID int64) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(purpose))
	m.Write([]byte{0})
	m.Write([]byte(strconv.FormatInt(noticeID, 10)))
	return hex.EncodeToString(m.Sum(nil))[:tagLen]
}

// RecipientHash is the keyed hash of an address (case-insensitive) kept on
// a notice once its email is accepted: a report must name that address.
// Eight bytes tell a person's few addresses apart; without the key nobody
// can make an address match one.
func RecipientHash(key []byte, address string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("ens-recipient-v1"))
	m.Write([]byte{0})
	m.Write([]byte(strings.ToLower(strings.TrimSpace(address))))
	return m.Sum(nil)[:8]
}

// bounceAddress is the VERP envelope sender of a notice: base's local part,
// a '+', the notice id and its tag.
func bounceAddress(key []byte, base string, noticeID int64) string {
	at := strings.LastIndexByte(base, '@')
	return base[:at] + "+" + strconv.FormatInt(noticeID, 10) + "-" + mailTag(key, "ens-verp-v1", noticeID) + base[at:]
}

// parseBounceAddress returns the notice an address names when it is one of
// our VERP addresses with a valid tag (any domain: relays rewrite it).
func parseBounceAddress(key []byte, base, address string) (int64, bool) {
	address = strings.Trim(strings.TrimSpace(address), "<>")
	at := strings.LastIndexByte(address, '@')
	bat := strings.LastIndexByte(base, '@')
	if at < 0 || bat < 0 {
		return 0, false
	}
	local, prefix := address[:at], base[:bat]+"+"
	if len(local) <= len(prefix) || !strings.EqualFold(local[:len(prefix)], prefix) {
		return 0, false
	}
	idPart, tag, ok := strings.Cut(local[len(prefix):], "-")
	if !ok {
		return 0, false
	}
	id, err := strconv.ParseInt(idPart, 10, 64)
	if err != nil || id <= 0 {
		return 0, false
	}
	if !hmac.Equal([]byte(strings.ToLower(tag)), []byte(mailTag(key, "ens-verp-v1", id))) {
		return 0, false
	}
	return id, true
}

// messageID is a notice's Message-ID (without angle brackets).
func messageID(key []byte, domain string, noticeID int64) string {
	return strconv.FormatInt(noticeID, 10) + "." + mailTag(key, "ens-msgid-v1", noticeID) + "@" + domain
}

// parseMessageID returns the notice a Message-ID names when its tag is valid.
func parseMessageID(key []byte, id string) (int64, bool) {
	id = strings.Trim(strings.TrimSpace(id), "<>")
	local, _, ok := strings.Cut(id, "@")
	if !ok {
		return 0, false
	}
	idPart, tag, ok := strings.Cut(local, ".")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(idPart, 10, 64)
	if err != nil || n <= 0 || !hmac.Equal([]byte(tag), []byte(mailTag(key, "ens-msgid-v1", n))) {
		return 0, false
	}
	return n, true
}
