package notify

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"net/textproto"
	"regexp"
	"strconv"
	"strings"
)

// Bounce is what a delivery status notification (RFC 3464) says of one of
// our notices.
type Bounce struct {
	NoticeID int64
	// Permanent: some recipient has Action: failed with a 5.x.x status.
	Permanent bool
	Status    string
}

// ErrUnreadable: the file is not a well-formed message.
var ErrUnreadable = errors.New("unreadable message")

// ErrNotDSN: the message is not a delivery status notification.
var ErrNotDSN = errors.New("not a delivery status notification (multipart/report; report-type=delivery-status)")

var noticeIDRe = regexp.MustCompile(`ens-notice-(\d+)@`)

// ParseDSN reads a bounce report and finds which notice it is about, from
// the Message-ID of the returned original (or its headers).
func ParseDSN(r io.Reader) (*Bounce, error) {
	// Parse errors quote the offending line, which may hold an address:
	// they are replaced by fixed reasons, fit for a log line.
	m, err := mail.ReadMessage(r)
	if err != nil {
		return nil, ErrUnreadable
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || !strings.EqualFold(params["report-type"], "delivery-status") {
		return nil, ErrNotDSN
	}
	b := &Bounce{}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, ErrUnreadable
		}
		body, _ := io.ReadAll(io.LimitReader(p, 1<<20))
		switch ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type")); ct {
		case "message/delivery-status":
			parseStatus(body, b)
		case "message/rfc822", "text/rfc822-headers", "message/rfc822-headers":
			tp := textproto.NewReader(bufio.NewReader(bytes.NewReader(append(body, '\r', '\n', '\r', '\n'))))
			h, _ := tp.ReadMIMEHeader()
			if mm := noticeIDRe.FindStringSubmatch(h.Get("Message-Id")); mm != nil {
				b.NoticeID, _ = strconv.ParseInt(mm[1], 10, 64)
			}
		}
	}
	if b.NoticeID == 0 {
		return nil, errors.New("the report does not name one of our notices")
	}
	return b, nil
}

// parseStatus reads the per-recipient groups of a delivery-status body.
func parseStatus(body []byte, b *Bounce) {
	groups := strings.Split(strings.ReplaceAll(string(body), "\r\n", "\n"), "\n\n")
	for _, g := range groups[min(1, len(groups)-1):] {
		tp := textproto.NewReader(bufio.NewReader(strings.NewReader(g + "\n\n")))
		h, _ := tp.ReadMIMEHeader()
		action := strings.ToLower(strings.TrimSpace(h.Get("Action")))
		status := strings.TrimSpace(h.Get("Status"))
		if action == "failed" && strings.HasPrefix(status, "5") {
			b.Permanent, b.Status = true, status
		}
	}
}
