package notify

import (
	"bufio"
	"errors"
	"io"
	"regexp"
	"strconv"
	"strings"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"
)

// BounceOutcome is what a delivery status notification says of a recipient
// (RFC 3464 §2.3.3, RFC 6533 for UTF-8 mail).
type BounceOutcome string

// The outcomes, as ens bounces ingest counts them.
const (
	// BouncePermanent: Action failed, whatever the status class (Postfix
	// reports a message that expired in its queue as failed with 4.x.x).
	BouncePermanent BounceOutcome = "permanent"
	// BounceTemporary: Action delayed; the MTA keeps trying.
	BounceTemporary BounceOutcome = "temporary"
	// BounceSuccess: delivered, relayed or expanded; nothing changes.
	BounceSuccess BounceOutcome = "success"
)

// ErrUnreadable — the file is not a well-formed message.
var ErrUnreadable = errors.New("unreadable message")

// ErrNotDSN — the message holds no delivery status (message/delivery-status
// or message/global-delivery-status).
var ErrNotDSN = errors.New("not a delivery status notification")

// Report is what a delivery status notification says, before anything is
// believed. It holds addresses: keep it in memory, never log it.
type Report struct {
	// Recipients are the per-recipient groups.
	Recipients []ReportRecipient
	// Envelope are the addresses the report itself was delivered to (To,
	// Delivered-To, X-Original-To, Envelope-To of the report and of any
	// message wrapping it), where our VERP address is.
	Envelope []string
	// MessageIDs are those of the returned original (a full copy or its
	// headers), when the report carries one.
	MessageIDs []string
}

// ReportRecipient is one per-recipient group of a report.
type ReportRecipient struct {
	FinalRecipient, OriginalRecipient string
	// Action is lower case, comments removed.
	Action  string
	Status  string
	Outcome BounceOutcome
}

// Limits on hostile input: a report is read up to maxReportBytes, parts nest
// at most maxDepth deep, a delivery-status part is read up to
// maxStatusBytes with at most maxGroups groups.
const (
	maxReportBytes = 16 << 20
	maxDepth       = 8
	maxStatusBytes = 1 << 20
	maxGroups      = 1000
)

// envelopeHeaders name where a report's own recipient shows.
var envelopeHeaders = []string{"Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To"}

// ParseReport reads a delivery status notification as RFC 3464 and RFC
// 6533 describe it, whatever wraps it: multipart/report with or without
// report-type, nested in multipart/mixed, forwarded as message/rfc822. It
// returns ErrUnreadable or ErrNotDSN, whose texts quote nothing of the input.
func ParseReport(r io.Reader) (*Report, error) {
	e, err := message.Read(io.LimitReader(r, maxReportBytes))
	if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
		return nil, ErrUnreadable
	}
	rep := &Report{}
	found, err := rep.walk(e, 0)
	if err != nil && !found {
		return nil, ErrUnreadable
	}
	if !found {
		return nil, ErrNotDSN
	}
	rep.Envelope = append(rep.Envelope, headerAddresses(e.Header.Header)...)
	return rep, nil
}

// walk reads e and its parts; it reports whether a delivery status was found
// in them.
func (rep *Report) walk(e *message.Entity, depth int) (bool, error) {
	if depth > maxDepth {
		return false, nil
	}
	ct, _, _ := e.Header.ContentType()
	switch ct = strings.ToLower(ct); {
	case strings.HasPrefix(ct, "multipart/"):
		mr := e.MultipartReader()
		if mr == nil { // a multipart type without a usable boundary
			return false, nil
		}
		found := false
		for {
			p, err := mr.NextPart()
			if errors.Is(err, io.EOF) {
				return found, nil
			}
			if err != nil && (p == nil || (!message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err))) {
				return found, err
			}
			f, err := rep.walk(p, depth+1)
			found = found || f
			if err != nil {
				return found, err
			}
		}
	case ct == "message/delivery-status" || ct == "message/global-delivery-status":
		rep.readStatus(e.Body)
		return true, nil
	case ct == "message/rfc822" || ct == "message/global":
		inner, err := message.Read(e.Body)
		if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
			return false, nil // a truncated original: its headers are lost, the report is not
		}
		sub := &Report{}
		found, _ := sub.walk(inner, depth+1)
		if !found {
			// The returned original: only its Message-ID is of use.
			rep.addMessageID(inner.Header.Header)
			return false, nil
		}
		// A report forwarded as a message: it was delivered to its own recipients.
		rep.Recipients = append(rep.Recipients, sub.Recipients...)
		rep.MessageIDs = append(rep.MessageIDs, sub.MessageIDs...)
		rep.Envelope = append(append(rep.Envelope, sub.Envelope...), headerAddresses(inner.Header.Header)...)
		return true, nil
	case ct == "text/rfc822-headers" || ct == "message/rfc822-headers" || ct == "message/global-headers":
		h, err := textproto.ReadHeader(bufio.NewReader(io.LimitReader(e.Body, maxStatusBytes)))
		if err == nil || h.Len() > 0 {
			rep.addMessageID(h)
		}
	}
	return false, nil
}

func (rep *Report) addMessageID(h textproto.Header) {
	if id := strings.TrimSpace(h.Get("Message-Id")); id != "" {
		rep.MessageIDs = append(rep.MessageIDs, id)
	}
}

// readStatus reads the groups of a delivery-status body: the per-message
// fields, then one group per recipient. LF or CRLF, folded lines, any case.
func (rep *Report) readStatus(body io.Reader) {
	br := bufio.NewReader(io.LimitReader(body, maxStatusBytes))
	for g := 0; g < maxGroups; g++ {
		// Blank lines between groups, or several of them, are skipped.
		for {
			b, err := br.Peek(1)
			if err != nil {
				return
			}
			if b[0] != '\r' && b[0] != '\n' {
				break
			}
			br.ReadByte() //nolint:errcheck // peeked
		}
		h, err := textproto.ReadHeader(br)
		if h.Len() > 0 && (h.Has("Action") || h.Has("Final-Recipient")) {
			action := normaliseAction(h.Get("Action"))
			rep.Recipients = append(rep.Recipients, ReportRecipient{
				FinalRecipient: reportAddress(h.Get("Final-Recipient")), OriginalRecipient: reportAddress(h.Get("Original-Recipient")),
				Action: action, Status: firstWord(h.Get("Status")), Outcome: outcomeOf(action)})
		}
		if err != nil {
			return
		}
	}
}

var comment = regexp.MustCompile(`\([^()]*\)`)

// normaliseAction lower-cases an Action value and removes its comments.
func normaliseAction(v string) string {
	for range 4 { // nested comments, peeled from the inside
		v = comment.ReplaceAllString(v, " ")
	}
	return strings.ToLower(firstWord(v))
}

func firstWord(v string) string {
	if f := strings.Fields(v); len(f) > 0 {
		return f[0]
	}
	return ""
}

// outcomeOf maps an action: failed is permanent whatever the status;
// delayed, or an action nobody defined, changes nothing yet.
func outcomeOf(action string) BounceOutcome {
	switch action {
	case "failed":
		return BouncePermanent
	case "delivered", "relayed", "expanded":
		return BounceSuccess
	}
	return BounceTemporary
}

var utf8Escape = regexp.MustCompile(`\\x\{([0-9A-Fa-f]{1,6})\}`)

// reportAddress reads "rfc822; a@b" or "utf-8; a@b" (whose non-ASCII
// characters may be written \x{HHHH}) as a@b.
func reportAddress(v string) string {
	if _, addr, ok := strings.Cut(v, ";"); ok {
		v = addr
	}
	v = utf8Escape.ReplaceAllStringFunc(v, func(s string) string {
		n, err := strconv.ParseUint(utf8Escape.FindStringSubmatch(s)[1], 16, 32)
		if err != nil {
			return s
		}
		return string(rune(n)) //nolint:gosec // at most 6 hex digits: below 2^24
	})
	return strings.Trim(strings.TrimSpace(v), "<>")
}

// headerAddresses lists the addresses of h's envelope headers.
func headerAddresses(h textproto.Header) []string {
	var out []string
	for _, k := range envelopeHeaders {
		for _, v := range h.Values(k) {
			for _, a := range strings.Split(v, ",") {
				a = strings.TrimSpace(a)
				if i := strings.LastIndexByte(a, '<'); i >= 0 {
					a = a[i+1:]
				}
				if a = strings.Trim(strings.TrimSpace(a), "<>"); strings.Contains(a, "@") {
					out = append(out, a)
				}
			}
		}
	}
	return out
}

// Bounce is a report believed to be about one of our notices: its envelope
// names the notice with a valid tag, and any Message-ID it returns names the
// same notice. The recipient check (the report must name the address the
// notice went to) is left to whoever holds the notice's RecipientHash.
type Bounce struct {
	NoticeID int64
	// Recipients: each group's outcome and status, with the keyed hashes of
	// the addresses it names.
	Recipients []BouncedRecipient
}

// BouncedRecipient is one recipient group of a believed report.
type BouncedRecipient struct {
	Outcome BounceOutcome
	Status  string
	Hashes  [][]byte
}

// ErrNotOurs — a report that names none of our notices with a valid tag, or
// whose returned Message-ID names another notice.
var ErrNotOurs = errors.New("the report names none of our notices (no valid bounce address)")

// BounceReader reads bounce reports and believes those about our notices.
type BounceReader struct {
	key  []byte
	base string
}

// NewBounceReader checks reports against the mail key and the bounce
// address base (ENS_BOUNCE_ADDRESS; default bounces@ the domain of from).
func NewBounceReader(key []byte, bounceAddress, from string) (*BounceReader, error) {
	base, _, err := bounceBase(bounceAddress, from)
	if err != nil {
		return nil, err
	}
	if len(key) < 16 {
		return nil, errors.New("reading bounces needs the mail key (derived from ENS_CODE_KEY)")
	}
	return &BounceReader{key: key, base: base}, nil
}

// Read parses a report and checks that it is about one of our notices:
// ErrUnreadable, ErrNotDSN or ErrNotOurs otherwise.
func (b *BounceReader) Read(r io.Reader) (*Bounce, error) {
	rep, err := ParseReport(r)
	if err != nil {
		return nil, err
	}
	return rep.Check(b.key, b.base)
}

// RecipientHash is the keyed hash of an address, as Mailer.RecipientHash.
func (b *BounceReader) RecipientHash(address string) []byte { return RecipientHash(b.key, address) }

// Check finds the notice a report is about from its VERP envelope address,
// checked under key, and the Message-ID it returns, if any.
func (rep *Report) Check(key []byte, bounceBase string) (*Bounce, error) {
	var id int64
	for _, a := range rep.Envelope {
		if n, ok := parseBounceAddress(key, bounceBase, a); ok {
			id = n
			break
		}
	}
	if id == 0 {
		return nil, ErrNotOurs
	}
	for _, mid := range rep.MessageIDs {
		if n, ok := parseMessageID(key, mid); !ok || n != id {
			return nil, ErrNotOurs
		}
	}
	b := &Bounce{NoticeID: id}
	for _, r := range rep.Recipients {
		br := BouncedRecipient{Outcome: r.Outcome, Status: r.Status}
		for _, a := range []string{r.FinalRecipient, r.OriginalRecipient} {
			if a != "" {
				br.Hashes = append(br.Hashes, RecipientHash(key, a))
			}
		}
		b.Recipients = append(b.Recipients, br)
	}
	return b, nil
}
