// Package mailsink is a real SMTP server for the demo, staging and tests: it
// accepts mail on loopback and stores each message as an .eml file (or only
// counts it). Rules make chosen recipients answer 4xx or 5xx.
package mailsink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

// Rule answers a RCPT TO: nil accepts; an *smtp.SMTPError refuses.
type Rule func(rcpt string) error

// Temporary is a 451 refusal, for rules.
var Temporary = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Essayez plus tard"}

// Permanent is a 550 refusal, for rules.
var Permanent = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "Boîte inconnue"}

// ServiceUnavailable is a 421 answer: the server is closing the session.
var ServiceUnavailable = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "Service indisponible"}

// Sink is a running SMTP server.
type Sink struct {
	srv      *smtp.Server
	ln       net.Listener
	dir      string
	rule     atomic.Pointer[Rule]
	count    atomic.Int64
	mu       sync.Mutex
	messages [][]byte // kept in memory when dir is empty and Keep is set
	keep     bool
	seq      atomic.Int64
	delay    time.Duration
	changed  chan struct{} // closed and replaced at each accepted message
}

// Options configure a sink.
type Options struct {
	Addr string // default 127.0.0.1:0
	Dir  string // where .eml files go; empty: not written
	Keep bool   // keep messages in memory (tests)
	// Delay is added before each message is accepted, as a relay across a
	// network takes (tests of throughput and outages).
	Delay time.Duration
}

// Start listens and serves in the background.
func Start(opts Options) (*Sink, error) {
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if opts.Dir != "" {
		if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
			return nil, fmt.Errorf("creating outbox: %w", err)
		}
	}
	s := &Sink{dir: opts.Dir, keep: opts.Keep, delay: opts.Delay, changed: make(chan struct{})}
	s.srv = smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &session{s: s}, nil }))
	s.srv.Domain = "mailsink.local"
	s.srv.AllowInsecureAuth = true
	s.srv.MaxMessageBytes = 1 << 20
	s.srv.ReadTimeout = time.Minute
	s.srv.WriteTimeout = time.Minute
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("mail sink listening on %s: %w", opts.Addr, err)
	}
	s.ln = ln
	go s.srv.Serve(ln) //nolint:errcheck
	return s, nil
}

// Addr is the listening address.
func (s *Sink) Addr() string { return s.ln.Addr().String() }

// URL is the SMTP_URL that reaches the sink.
func (s *Sink) URL() string { return "smtp://" + s.Addr() + "?tls=none" }

// SetRule replaces the recipient rule.
func (s *Sink) SetRule(r Rule) { s.rule.Store(&r) }

// Count is how many messages were accepted.
func (s *Sink) Count() int64 { return s.count.Load() }

// Messages returns the kept messages.
func (s *Sink) Messages() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.messages...)
}

// WaitCount waits until at least n messages were accepted, or ctx ends.
func (s *Sink) WaitCount(ctx context.Context, n int64) error {
	for {
		s.mu.Lock()
		ch := s.changed
		s.mu.Unlock()
		if s.count.Load() >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close stops the server.
func (s *Sink) Close() error { return s.srv.Close() }

type session struct {
	s    *Sink
	from string
	rcpt []string
}

func (x *session) Reset()        { x.rcpt, x.from = nil, "" }
func (x *session) Logout() error { return nil }
func (x *session) Mail(from string, _ *smtp.MailOptions) error {
	x.from = from
	return nil
}
func (x *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if r := x.s.rule.Load(); r != nil && *r != nil {
		if err := (*r)(to); err != nil {
			return err
		}
	}
	x.rcpt = append(x.rcpt, to)
	return nil
}

func (x *session) Data(r io.Reader) error {
	if len(x.rcpt) == 0 {
		return errors.New("no recipient")
	}
	if x.s.delay > 0 {
		time.Sleep(x.s.delay) // a relay's round trip, not a wait for a condition
	}
	// As a delivering MTA does, the envelope sender is kept in Return-Path.
	var buf bytes.Buffer
	buf.WriteString("Return-Path: <" + x.from + ">\r\n")
	if _, err := io.Copy(&buf, r); err != nil {
		return err
	}
	if x.s.dir != "" {
		name := fmt.Sprintf("%d-%06d.eml", time.Now().UnixNano(), x.s.seq.Add(1))
		tmp := filepath.Join(x.s.dir, "."+name)
		if err := os.WriteFile(tmp, buf.Bytes(), 0o600); err != nil {
			return &smtp.SMTPError{Code: 451, Message: "stockage indisponible"}
		}
		if err := os.Rename(tmp, filepath.Join(x.s.dir, name)); err != nil {
			return &smtp.SMTPError{Code: 451, Message: "stockage indisponible"}
		}
	}
	if x.s.keep {
		x.s.mu.Lock()
		x.s.messages = append(x.s.messages, buf.Bytes())
		x.s.mu.Unlock()
	}
	x.s.mu.Lock()
	x.s.count.Add(1)
	close(x.s.changed)
	x.s.changed = make(chan struct{})
	x.s.mu.Unlock()
	return nil
}

// RecipientIs returns a rule matching recipients that contain any of parts.
func RecipientIs(err error, parts ...string) Rule {
	return func(rcpt string) error {
		for _, p := range parts {
			if strings.Contains(rcpt, p) {
				return err
			}
		}
		return nil
	}
}
