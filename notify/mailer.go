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
	// Key tags bounce addresses and Message-IDs and hashes recipients
	// (optout.Key.MailKey). Required: without it a bounce could be forged.
	Key []byte
	// BounceAddress is the envelope sender's base (ENS_BOUNCE_ADDRESS);
	// each notice goes out from base+<notice>-<tag>@domain. Default
	// bounces@ the domain of From.
	BounceAddress string
	// DKIMKeyPEM, with DKIMSelector, signs every message for From's domain
	// (ENS_DKIM_KEY_FILE, ENS_DKIM_SELECTOR): RSA or Ed25519, PKCS#1 or #8.
	DKIMKeyPEM   []byte
	DKIMSelector string
	// RelayStreak: this many recipients deferred in a row (4xx) mean the
	// relay, not the recipients, is failing (default 20).
	RelayStreak int
	// ProbeEvery is the first delay between probes of a failed relay,
	// doubling to 30 s (default 1 s).
	ProbeEvery time.Duration
	// OnRelayChange is told when the relay fails, is probed in vain, and
	// comes back.
	OnRelayChange func(RelayState)
}

// SendOutcome classifies the result of one message.
type SendOutcome int

const (
	// Accepted — the server took responsibility for the message (250).
	Accepted SendOutcome = iota
	// Temporary — the recipient was deferred (4xx); retry later, and fall
	// back to a letter only once it has lasted ENS_EMAIL_GIVE_UP_AFTER.
	Temporary
	// Permanent — 5xx; the address will not work, fall back to a letter.
	Permanent
	// RelayDown — the relay itself failed (unreachable, TLS or
	// authentication refused, 421, sender refused, every recipient
	// deferred); nothing is known of the recipient. Sending pauses until a
	// probe finds the relay back.
	RelayDown
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
	key     []byte
	bounce  string // the envelope sender's base
	conns   chan *smtp.Client
	limiter *rate.Limiter
	relay   *relay
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
		cfg.From = DefaultFrom
	}
	if len(cfg.Key) < 16 {
		return nil, errors.New("the mailer needs its key (derived from ENS_CODE_KEY) to tag bounce addresses and Message-IDs")
	}
	if cfg.RelayStreak == 0 {
		cfg.RelayStreak = 20
	}
	if cfg.ProbeEvery <= 0 {
		cfg.ProbeEvery = time.Second
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
	bounce, domain, err := bounceBase(cfg.BounceAddress, cfg.From)
	if err != nil {
		return nil, err
	}
	if len(cfg.DKIMKeyPEM) > 0 {
		if cfg.DKIMSelector == "" {
			return nil, errors.New("a DKIM key needs its selector (ENS_DKIM_SELECTOR)")
		}
		signer, err := mail.PrivKeyFromPEM(cfg.DKIMKeyPEM)
		if err != nil {
			return nil, fmt.Errorf("reading the DKIM key: %w", err)
		}
		dk := mail.NewDKIMSigner(domain, cfg.DKIMSelector, signer)
		dk.HeaderCanonicalization(mail.CanonicalizationRelaxed)
		dk.BodyCanonicalization(mail.CanonicalizationRelaxed)
		opts = append(opts, mail.WithAlwaysDKIMSign(dk))
	}
	c, err := mail.NewClient(u.Hostname(), opts...)
	if err != nil {
		return nil, fmt.Errorf("configuring SMTP client: %w", err)
	}
	m := &Mailer{client: c, addr: u.Host, from: cfg.From, domain: domain, key: cfg.Key, bounce: bounce,
		conns: make(chan *smtp.Client, cfg.Connections), limiter: rate.NewLimiter(rate.Inf, 1)}
	if cfg.Rate > 0 {
		m.limiter = rate.NewLimiter(rate.Limit(cfg.Rate), max(1, int(cfg.Rate/10)))
	}
	m.relay = newRelay(cfg.RelayStreak, cfg.ProbeEvery, m.probe)
	m.relay.onChange = cfg.OnRelayChange
	for range cfg.Connections {
		m.conns <- nil // a slot; dialled on first use
	}
	return m, nil
}

// bounceBase returns the VERP base address and the sending domain: the
// domain of from, and bounceAddress or bounces@ that domain.
func bounceBase(bounceAddress, from string) (base, domain string, err error) {
	if from == "" {
		from = DefaultFrom
	}
	domain = from[strings.LastIndexByte(from, '@')+1:]
	if bounceAddress == "" {
		bounceAddress = "bounces@" + domain
	}
	if at := strings.LastIndexByte(bounceAddress, '@'); at <= 0 || strings.ContainsAny(bounceAddress, "+ <>") {
		return "", "", errors.New("ENS_BOUNCE_ADDRESS must be a plain address such as bounces@example.fr (no '+')")
	}
	return bounceAddress, domain, nil
}

// DefaultFrom is the sender when ENS_MAIL_FROM is unset.
const DefaultFrom = "ne-pas-repondre@monespacesante.fr"

// MessageID is the stable Message-ID of a notice: a retry of the same notice
// carries the same one, so a duplicate can be recognised; its keyed tag
// makes it unguessable.
func (m *Mailer) MessageID(noticeID int64) string { return messageID(m.key, m.domain, noticeID) }

// BounceAddress is the envelope sender a notice's email goes out with.
func (m *Mailer) BounceAddress(noticeID int64) string {
	return bounceAddress(m.key, m.bounce, noticeID)
}

// RecipientHash is the keyed hash of the address an email goes to, kept on
// its notice: a bounce report must name that address.
func (m *Mailer) RecipientHash(address string) []byte { return RecipientHash(m.key, address) }

// Build turns a rendered email into a message for one recipient: plain text
// first, then HTML; the envelope sender is the notice's VERP address;
// Auto-Submitted marks it as sent by a program (no auto-replies), and
// Feedback-ID lets mailbox providers report complaints per wave.
func (m *Mailer) Build(noticeID, waveID int64, to string, e *Email) (*mail.Msg, error) {
	msg := mail.NewMsg()
	if err := msg.FromFormat("Mon espace santé", m.from); err != nil {
		return nil, fmt.Errorf("sender address: %w", err)
	}
	if err := msg.EnvelopeFrom(m.BounceAddress(noticeID)); err != nil {
		return nil, fmt.Errorf("bounce address: %w", err)
	}
	if err := msg.To(to); err != nil {
		return nil, errors.New("recipient address refused by the mail library")
	}
	msg.SetMessageIDWithValue(m.MessageID(noticeID))
	msg.SetDate()
	msg.SetGenHeader("Auto-Submitted", "auto-generated")
	msg.SetGenHeader("Feedback-ID", fmt.Sprintf("wave-%d:%s:ens:%s", waveID, e.Kind, m.domain))
	msg.Subject(e.Subject)
	msg.SetBodyString(mail.TypeTextPlain, e.Text)
	msg.AddAlternativeString(mail.TypeTextHTML, e.HTML)
	return msg, nil
}

// Send sends one message on a pooled connection. A broken connection is
// dropped and the message retried once on a fresh one, since the server did
// not accept it. While the relay is down, Send answers RelayDown at once.
func (m *Mailer) Send(ctx context.Context, msg *mail.Msg) SendResult {
	if m.relay.isDown() {
		return SendResult{Outcome: RelayDown, Reason: "relay down"}
	}
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
				res = SendResult{Outcome: RelayDown, Reason: "connect: " + classifyNet(err)}
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
			// The connection is fine, unless the relay is closing it (421);
			// clear the failed transaction.
			if res.Outcome == RelayDown || m.client.ResetWithSMTPClient(conn) != nil {
				_ = m.client.CloseWithSMTPClient(conn)
				conn = nil
			}
			break
		}
		// A second broken connection in a row is the relay's doing.
		res.Outcome = RelayDown
		_ = m.client.CloseWithSMTPClient(conn)
		conn = nil
	}
	m.conns <- conn
	switch {
	case res.Outcome == Accepted:
		m.relay.accepted()
	case ctx.Err() != nil: // our own stop, not the relay's doing
		res = SendResult{Outcome: Temporary, Reason: "cancelled"}
	case res.Outcome == RelayDown:
		m.relay.fail(res.Reason)
	case res.Outcome == Temporary:
		if m.relay.deferred() {
			res.Outcome = RelayDown
		}
	default: // a recipient refused for good: the relay answers
		m.relay.accepted()
	}
	return res
}

// RelayState says whether the relay is up, since when, and why not.
func (m *Mailer) RelayState() RelayState { return m.relay.state() }

// WaitRelay waits up to max for the relay to be up; it reports whether it is.
func (m *Mailer) WaitRelay(ctx context.Context, max time.Duration) bool {
	return m.relay.waitUp(ctx, max)
}

// probe dials the relay and says goodbye: it answers, so sending resumes.
func (m *Mailer) probe(ctx context.Context) error {
	c, err := m.client.DialToSMTPClientWithContext(ctx)
	if err != nil {
		return err
	}
	_ = c.Quit()
	return nil
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

// Close stops probing and closes every pooled connection.
func (m *Mailer) Close() {
	m.relay.close()
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
		// 421 closes the session; a refused sender refuses everyone.
		if se.ErrorCode() == 421 || (se.Reason == mail.ErrSMTPMailFrom && se.ErrorCode() >= 400) {
			return SendResult{Outcome: RelayDown, Reason: reason}
		}
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
