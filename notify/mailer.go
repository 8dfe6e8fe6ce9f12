package notify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/wneessen/go-mail"
	"github.com/wneessen/go-mail/smtp"
	"golang.org/x/time/rate"
)

// SMTPConfig configures the mailer.
type SMTPConfig struct {
	// URL is smtp://user:pass@host:port?tls=none|starttls|tls (SMTP_URL).
	URL string
	// From is the sender address (ENS_MAIL_FROM).
	From string
	// Connections is how many SMTP connections stay open (default 4).
	Connections int
	// Rate caps messages per second across all connections (0: no cap).
	Rate    float64
	Timeout time.Duration
}

// SendOutcome classifies the result of one message.
type SendOutcome int

const (
	// Accepted: the server took responsibility for the message (250).
	Accepted SendOutcome = iota
	// Temporary: 4xx, timeout or broken connection; retry later.
	Temporary
	// Permanent: 5xx; the address will not work, fall back to a letter.
	Permanent
)

// SendResult is the outcome of one message and a log-safe reason (the SMTP
// code and stage, never the address).
type SendResult struct {
	Outcome SendOutcome
	Reason  string
}

// Mailer sends messages over a pool of persistent SMTP connections, many
// messages per connection, one goroutine per connection at a time (a go-mail
// Client serialises its own sends, so each connection is its own smtp.Client).
type Mailer struct {
	client  *mail.Client
	addr    string // host:port, for errors
	from    string
	domain  string
	conns   chan *smtp.Client
	limiter *rate.Limiter
}

// NewMailer prepares a mailer; connections open lazily.
func NewMailer(cfg SMTPConfig) (*Mailer, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || u.Host == "" || (u.Scheme != "smtp" && u.Scheme != "smtps") {
		return nil, errors.New("SMTP_URL must look like smtp://user:pass@host:port?tls=none|starttls|tls")
	}
	if cfg.Connections <= 0 {
		cfg.Connections = 4
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.From == "" {
		cfg.From = "ne-pas-repondre@monespacesante.fr"
	}
	port := 25
	if p := u.Port(); p != "" {
		port, _ = strconv.Atoi(p)
	}
	opts := []mail.Option{mail.WithPort(port), mail.WithTimeout(cfg.Timeout), mail.WithoutNoop(), mail.WithHELO("ens.local")}
	switch tlsMode := u.Query().Get("tls"); tlsMode {
	case "", "starttls":
		opts = append(opts, mail.WithTLSPolicy(mail.TLSMandatory))
	case "none":
		opts = append(opts, mail.WithTLSPolicy(mail.NoTLS))
	case "tls":
		opts = append(opts, mail.WithSSL())
	default:
		return nil, fmt.Errorf("SMTP_URL: tls=%q: expected none, starttls or tls", tlsMode)
	}
	if u.User != nil {
		pass, _ := u.User.Password()
		opts = append(opts, mail.WithSMTPAuth(mail.SMTPAuthAutoDiscover), mail.WithUsername(u.User.Username()), mail.WithPassword(pass))
	}
	c, err := mail.NewClient(u.Hostname(), opts...)
	if err != nil {
		return nil, fmt.Errorf("configuring SMTP client: %w", err)
	}
	m := &Mailer{client: c, addr: u.Host, from: cfg.From, conns: make(chan *smtp.Client, cfg.Connections), limiter: rate.NewLimiter(rate.Inf, 1)}
	if cfg.Rate > 0 {
		m.limiter = rate.NewLimiter(rate.Limit(cfg.Rate), max(1, int(cfg.Rate/10)))
	}
	m.domain = "monespacesante.fr"
	if at := strings.LastIndexByte(cfg.From, '@'); at >= 0 {
		m.domain = cfg.From[at+1:]
	}
	for range cfg.Connections {
		m.conns <- nil // a slot; dialled on first use
	}
	return m, nil
}

// MessageID is the stable Message-ID of a notice: a retry of the same notice
// carries the same one, so a duplicate can be recognised.
func (m *Mailer) MessageID(noticeID int64) string {
	return fmt.Sprintf("ens-notice-%d@%s", noticeID, m.domain)
}

// Build turns a rendered email into a message for one recipient.
func (m *Mailer) Build(noticeID int64, to string, e *Email) (*mail.Msg, error) {
	msg := mail.NewMsg()
	if err := msg.FromFormat("Mon espace santé", m.from); err != nil {
		return nil, fmt.Errorf("sender address: %w", err)
	}
	if err := msg.To(to); err != nil {
		return nil, errors.New("recipient address refused by the mail library")
	}
	msg.SetMessageIDWithValue(m.MessageID(noticeID))
	msg.SetDate()
	msg.Subject(e.Subject)
	msg.SetBodyString(mail.TypeTextPlain, e.Text)
	msg.AddAlternativeString(mail.TypeTextHTML, e.HTML)
	return msg, nil
}

// Send sends one message on a pooled connection. A broken connection is
// dropped and the message retried once on a fresh one, since the server did
// not accept it.
func (m *Mailer) Send(ctx context.Context, msg *mail.Msg) SendResult {
	if err := m.limiter.Wait(ctx); err != nil {
		return SendResult{Outcome: Temporary, Reason: "cancelled"}
	}
	var conn *smtp.Client
	select {
	case conn = <-m.conns:
	case <-ctx.Done():
		return SendResult{Outcome: Temporary, Reason: "cancelled"}
	}
	var res SendResult
	for try := 0; try < 2; try++ {
		if conn == nil {
			c, err := m.client.DialToSMTPClientWithContext(ctx)
			if err != nil {
				res = SendResult{Outcome: Temporary, Reason: "connect: " + classifyNet(err)}
				break
			}
			conn = c
		}
		err := m.client.SendWithSMTPClient(conn, msg)
		if err == nil {
			res = SendResult{Outcome: Accepted}
			break
		}
		res = classify(err)
		if !isNetwork(err) {
			// The connection is fine; clear the failed transaction.
			if m.client.ResetWithSMTPClient(conn) != nil {
				_ = m.client.CloseWithSMTPClient(conn)
				conn = nil
			}
			break
		}
		_ = m.client.CloseWithSMTPClient(conn)
		conn = nil
	}
	m.conns <- conn
	return res
}

// Check opens one connection to the server and keeps it in the pool, so a
// worker refuses to start on a wrong address or TLS setting instead of
// turning a whole wave's emails into letters once their retries run out.
// The error names the server and what failed, never a recipient.
func (m *Mailer) Check(ctx context.Context) error {
	var conn *smtp.Client
	select {
	case conn = <-m.conns:
	case <-ctx.Done():
		return ctx.Err()
	}
	if conn == nil {
		c, err := m.client.DialToSMTPClientWithContext(ctx)
		if err != nil {
			m.conns <- nil
			return fmt.Errorf("connecting to the SMTP server %s: %w", m.addr, err)
		}
		conn = c
	}
	m.conns <- conn
	return nil
}

// Close closes every pooled connection.
func (m *Mailer) Close() {
	for range cap(m.conns) {
		if c := <-m.conns; c != nil {
			_ = m.client.CloseWithSMTPClient(c)
		}
	}
}

// classify maps a go-mail error to an outcome. go-mail labels network errors
// (EOF, timeouts, resets) permanent; they are temporary here.
func classify(err error) SendResult {
	if isNetwork(err) {
		return SendResult{Outcome: Temporary, Reason: "network: " + classifyNet(err)}
	}
	var se *mail.SendError
	if errors.As(err, &se) {
		reason := fmt.Sprintf("smtp %d at %s", se.ErrorCode(), se.Reason)
		if se.IsTemp() || (se.ErrorCode() >= 400 && se.ErrorCode() < 500) {
			return SendResult{Outcome: Temporary, Reason: reason}
		}
		if se.ErrorCode() >= 500 {
			return SendResult{Outcome: Permanent, Reason: reason}
		}
		return SendResult{Outcome: Temporary, Reason: reason}
	}
	return SendResult{Outcome: Temporary, Reason: "unclassified send error"}
}

func isNetwork(err error) bool {
	var ne net.Error
	var se *mail.SendError
	if errors.As(err, &se) && se.ErrorCode() >= 400 {
		return false
	}
	return errors.As(err, &ne) || errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "EOF") ||
		strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe")
}

func classifyNet(err error) string {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	if strings.Contains(err.Error(), "refused") {
		return "connection refused"
	}
	return "connection error"
}

// Connections is the size of the connection pool.
func (m *Mailer) Connections() int { return cap(m.conns) }
