package notify_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/ens-sante/ens/notify"
)

// testMailer builds a mailer (it dials nobody until it sends) to learn the
// bounce address and Message-ID of a notice.
func testMailer(t testing.TB) *notify.Mailer {
	t.Helper()
	m, err := notify.NewMailer(notify.SMTPConfig{URL: "smtp://127.0.0.1:1?tls=none", Key: testMailKey, From: "ne-pas-repondre@ens.test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

func testReader(t testing.TB) *notify.BounceReader {
	t.Helper()
	r, err := notify.NewBounceReader(testMailKey, "", "ne-pas-repondre@ens.test")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

const rcpt = "zoe.martin@example.fr"

// statusPart is a delivery-status body for one recipient.
func statusPart(ct, final, action, status string) string {
	return "Content-Type: " + ct + "\r\n\r\nReporting-MTA: dns; mx.example.fr\r\nArrival-Date: Tue, 1 Dec 2026 10:00:00 +0100\r\n\r\n" +
		"Final-Recipient: " + final + "\r\nAction: " + action + "\r\nStatus: " + status + "\r\nDiagnostic-Code: smtp; 550 5.1.1 unknown\r\n"
}

func report(to, contentType, status, original string) string {
	return "From: MAILER-DAEMON@mx.example.fr\r\nTo: " + to + "\r\nSubject: Undelivered Mail Returned to Sender\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: " + contentType + "; boundary=\"R\"\r\n\r\n" +
		"--R\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nVotre message n'a pas pu être remis.\r\n" +
		"--R\r\n" + status + "\r\n" + original + "--R--\r\n"
}

func headersPart(ct, msgID string) string {
	return "--R\r\nContent-Type: " + ct + "\r\n\r\nMessage-ID: <" + msgID + ">\r\nFrom: Mon espace santé <ne-pas-repondre@ens.test>\r\nTo: " + rcpt + "\r\nSubject: x\r\n\r\n"
}

// The shapes real MTAs send: each must be read, about the right notice, as
// permanent, temporary or success. (Before, ParseDSN refused every shape but
// the first, counted failed 4.x.x, commented actions and successes as
// temporary, and never read RFC 6533 reports.)
func TestBounceReportsReadAsTheRFCsSay(t *testing.T) {
	t.Parallel()
	m := testMailer(t)
	const id = 4242
	verp, msgID := m.BounceAddress(id), m.MessageID(id)
	std := "multipart/report; report-type=delivery-status"
	for _, tc := range []struct {
		name, msg string
		want      notify.BounceOutcome
	}{
		{"postfix 5.1.1 with headers", report(verp, std, statusPart("message/delivery-status", "rfc822; "+rcpt, "failed", "5.1.1"),
			headersPart("text/rfc822-headers", msgID)), notify.BouncePermanent},
		{"no report-type", report(verp, "multipart/report", statusPart("message/delivery-status", "rfc822; "+rcpt, "failed", "5.1.1"), ""), notify.BouncePermanent},
		{"no copy of the original", report(verp, std, statusPart("message/delivery-status", "rfc822;"+rcpt, "failed", "5.2.2"), ""), notify.BouncePermanent},
		{"expired in the queue: failed 4.4.7", report(verp, std, statusPart("message/delivery-status", "rfc822; "+rcpt, "failed", "4.4.7"),
			headersPart("message/rfc822", msgID)), notify.BouncePermanent},
		{"action with a comment", report(verp, std, statusPart("message/delivery-status", "rfc822; "+rcpt, "failed (Bad destination mailbox address)", "5.1.1"), ""), notify.BouncePermanent},
		{"action in capitals", report(verp, std, statusPart("message/delivery-status", "RFC822; <"+strings.ToUpper(rcpt)+">", "FAILED", "5.0.0"), ""), notify.BouncePermanent},
		{"delayed", report(verp, std, statusPart("message/delivery-status", "rfc822; "+rcpt, "delayed", "4.4.1"), ""), notify.BounceTemporary},
		{"delivered", report(verp, std, statusPart("message/delivery-status", "rfc822; "+rcpt, "delivered", "2.0.0"), ""), notify.BounceSuccess},
		{"relayed", report(verp, std, statusPart("message/delivery-status", "rfc822; "+rcpt, "relayed", "2.0.0"), ""), notify.BounceSuccess},
		{"RFC 6533 global report", report(verp, "multipart/report; report-type=global-delivery-status",
			statusPart("message/global-delivery-status", "utf-8; "+rcpt, "failed", "5.1.1"), headersPart("message/global", msgID)), notify.BouncePermanent},
		{"LF line ends", strings.ReplaceAll(report(verp, std, statusPart("message/delivery-status", "rfc822; "+rcpt, "failed", "5.1.1"), ""), "\r\n", "\n"), notify.BouncePermanent},
		{"wrapped in multipart/mixed by a list server", "From: liste@example.fr\r\nTo: " + verp + "\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"W\"\r\n\r\n" +
			"--W\r\nContent-Type: text/plain\r\n\r\nLe message suivant n'a pas été remis.\r\n--W\r\n" +
			strings.SplitN(report("x", std, statusPart("message/delivery-status", "rfc822; "+rcpt, "failed", "5.1.1"), ""), "MIME-Version: 1.0\r\n", 2)[1] +
			"\r\n--W--\r\n", notify.BouncePermanent},
		{"forwarded as message/rfc822", "From: postmaster@example.fr\r\nTo: abuse@ens.test\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"F\"\r\n\r\n" +
			"--F\r\nContent-Type: text/plain\r\n\r\nFwd\r\n--F\r\nContent-Type: message/rfc822\r\n\r\n" +
			report(verp, std, statusPart("message/delivery-status", "rfc822; "+rcpt, "failed", "5.1.1"), headersPart("text/rfc822-headers", msgID)) +
			"\r\n--F--\r\n", notify.BouncePermanent},
		{"delivered to the envelope sender (Delivered-To)", "Delivered-To: " + verp + "\r\n" +
			report("undisclosed-recipients:;", std, statusPart("message/delivery-status", "rfc822; "+rcpt, "failed", "5.1.1"), ""), notify.BouncePermanent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, err := testReader(t).Read(strings.NewReader(tc.msg))
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if b.NoticeID != id || len(b.Recipients) != 1 {
				t.Fatalf("notice %d with %d recipient group(s), want %d with 1", b.NoticeID, len(b.Recipients), id)
			}
			r := b.Recipients[0]
			if r.Outcome != tc.want {
				t.Fatalf("outcome %s, want %s", r.Outcome, tc.want)
			}
			if !bytes.Equal(r.Hashes[0], m.RecipientHash(rcpt)) {
				t.Fatal("the recipient's hash is not that of the address the notice went to")
			}
		})
	}
}

// A report is believed only with a valid keyed bounce address, and a
// returned Message-ID that names the same notice. (Before, any report naming
// ens-notice-N@ anywhere moved person N to a letter.)
func TestForgedBouncesAreNotOurs(t *testing.T) {
	t.Parallel()
	m := testMailer(t)
	const id = 77
	verp := m.BounceAddress(id)
	forged := strings.Replace(verp, "-", "-0", 1)
	status := statusPart("message/delivery-status", "rfc822; "+rcpt, "failed", "5.1.1")
	for name, msg := range map[string]string{
		"no bounce address, our old Message-ID":  report("ne-pas-repondre@ens.test", "multipart/report", status, headersPart("text/rfc822-headers", "ens-notice-77@ens.test")),
		"no bounce address, a valid Message-ID":  report("ne-pas-repondre@ens.test", "multipart/report", status, headersPart("text/rfc822-headers", m.MessageID(id))),
		"a forged tag":                           report(forged, "multipart/report", status, ""),
		"another notice's id with this tag":      report(strings.Replace(verp, "+77-", "+78-", 1), "multipart/report", status, ""),
		"a valid address, another Message-ID":    report(verp, "multipart/report", status, headersPart("text/rfc822-headers", m.MessageID(id+1))),
		"a valid address, a foreign Message-ID":  report(verp, "multipart/report", status, headersPart("text/rfc822-headers", "abc@elsewhere.example")),
		"a valid address in the original's copy": report("x@example.fr", "multipart/report", status, headersPart("message/rfc822", m.MessageID(id))+"Return-Path: <"+verp+">\r\n"),
	} {
		if _, err := testReader(t).Read(strings.NewReader(msg)); !errors.Is(err, notify.ErrNotOurs) {
			t.Errorf("%s: %v, want not ours", name, err)
		}
	}
}

// Hostile input gets a clear error, never a crash, and no error quotes it.
func TestHostileReportsNeverCrash(t *testing.T) {
	t.Parallel()
	m := testMailer(t)
	valid := report(m.BounceAddress(5), "multipart/report", statusPart("message/delivery-status", "rfc822; "+rcpt, "failed", "5.1.1"), "")
	huge := io.MultiReader(strings.NewReader("Subject: x\r\nContent-Type: multipart/report; boundary=\"R\"\r\n\r\n--R\r\n"),
		&endless{b: []byte("A" + rcpt + "\r\n")}) // 1 GB and more, never read to the end
	for name, r := range map[string]io.Reader{
		"plain message":    strings.NewReader("Subject: hello\r\n\r\nnot a report"),
		"broken header":    strings.NewReader("To " + rcpt + " broken header\r\n\r\n"),
		"binary":           bytes.NewReader([]byte{0, 1, 2, 0xff, 0xfe, '\n', '\r', 0x80, '@'}),
		"truncated":        strings.NewReader(valid[:len(valid)/2]),
		"mixed line ends":  strings.NewReader(strings.Replace(valid, "\r\n", "\n", 7)),
		"endless":          huge,
		"deep nesting":     strings.NewReader(strings.Repeat("Content-Type: message/rfc822\r\n\r\n", 200) + "x"),
		"empty":            strings.NewReader(""),
		"boundary missing": strings.NewReader("Content-Type: multipart/report\r\n\r\n--\r\n"),
	} {
		_, err := testReader(t).Read(r)
		if err == nil && name != "mixed line ends" {
			t.Errorf("%s: read as a report", name)
		}
		if err != nil && strings.Contains(err.Error(), "@") {
			t.Errorf("%s: the error quotes the input: %v", name, err)
		}
	}
}

// endless yields its bytes forever, counting how much was read.
type endless struct {
	b []byte
	n int64
}

func (e *endless) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		n += copy(p[n:], e.b)
	}
	e.n += int64(n)
	if e.n > 2<<30 {
		return 0, fmt.Errorf("read more than 2 GB")
	}
	return n, nil
}

// FuzzParseReport: no input crashes the bounce parser or makes it quote
// an address in an error.
func FuzzParseReport(f *testing.F) {
	m, _ := notify.NewMailer(notify.SMTPConfig{URL: "smtp://127.0.0.1:1?tls=none", Key: testMailKey})
	f.Add(report(m.BounceAddress(1), "multipart/report; report-type=delivery-status", statusPart("message/delivery-status", "rfc822; "+rcpt, "failed", "5.1.1"), headersPart("text/rfc822-headers", m.MessageID(1))))
	f.Add(report(m.BounceAddress(2), "multipart/report", statusPart("message/global-delivery-status", "utf-8; "+rcpt, "failed (x)", "4.4.7"), ""))
	f.Add("Content-Type: message/rfc822\r\n\r\nContent-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\n")
	f.Fuzz(func(t *testing.T, s string) {
		_, err := notify.ParseReport(strings.NewReader(s))
		if err != nil && strings.Contains(err.Error(), "@") {
			t.Fatalf("error quotes the input: %v", err)
		}
	})
}

// An mbox is read message by message (each with its position as name), a
// Maildir's new messages once, a folder's .eml files every time.
func TestMailboxesOfEveryForm(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mbox := dir + "/bounces.mbox"
	os.WriteFile(mbox, []byte("From MAILER-DAEMON Tue Dec  1 10:00:00 2026\nSubject: one\n\nbody\n>From here\n\n"+
		"From MAILER-DAEMON Tue Dec  1 10:01:00 2026\nSubject: two\n\nbody\n"), 0o600) //nolint:errcheck
	var names []string
	read := func(path string) []string {
		names = nil
		err := notify.EachMessage(path, func(name string, r io.Reader) error {
			b, _ := io.ReadAll(r)
			names = append(names, name+":"+strings.TrimSuffix(strings.SplitN(string(b), "\n", 2)[0], "\r"))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return names
	}
	if got := read(mbox); len(got) != 2 || got[0] != "bounces.mbox#1:Subject: one" || got[1] != "bounces.mbox#2:Subject: two" {
		t.Fatalf("mbox: %q", got)
	}
	md := dir + "/Maildir"
	for _, sub := range []string{"new", "cur", "tmp"} {
		os.MkdirAll(md+"/"+sub, 0o700) //nolint:errcheck
	}
	os.WriteFile(md+"/new/100.host", []byte("Subject: new\n\nx"), 0o600)            //nolint:errcheck
	os.WriteFile(md+"/cur/90.host:2,", []byte("Subject: unseen\n\nx"), 0o600)       //nolint:errcheck
	os.WriteFile(md+"/cur/80.host:2,S", []byte("Subject: read before\n\nx"), 0o600) //nolint:errcheck
	if got := read(md); len(got) != 2 {
		t.Fatalf("Maildir, first reading: %q", got)
	}
	if got := read(md); len(got) != 0 {
		t.Fatalf("Maildir, second reading: %q", got)
	}
	os.WriteFile(dir+"/a.eml", []byte("Subject: eml\n\nx"), 0o600) //nolint:errcheck
	// A folder: every file, whatever its name (a Maildir's new/ as Postfix
	// writes it), an mbox message by message; sub-folders and hidden files
	// skipped. (Before: only *.eml files were read.)
	os.WriteFile(dir+"/1765000000.M1P2.mx", []byte("Subject: no suffix\n\nx"), 0o600) //nolint:errcheck
	os.WriteFile(dir+"/.lock", []byte("Subject: hidden\n\nx"), 0o600)                 //nolint:errcheck
	want := []string{"1765000000.M1P2.mx:Subject: no suffix", "a.eml:Subject: eml", "bounces.mbox#1:Subject: one", "bounces.mbox#2:Subject: two"}
	if got := read(dir); !slices.Equal(got, want) {
		t.Fatalf("a folder of messages: %q, want %q", got, want)
	}
}
