package notify_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"net/mail"
	"strings"
	"testing"

	"github.com/emersion/go-message"
	"github.com/emersion/go-msgauth/dkim"

	"github.com/ens-sante/ens/notify"
	"github.com/ens-sante/ens/notify/mailsink"
)

// Every notice goes out DKIM-signed for the sender's domain when a key is
// configured (the signature verifies against the public key an operator
// publishes), from its VERP bounce address, marked Auto-Submitted, with a
// Feedback-ID naming the wave, plain text first, and a Message-ID nobody
// can guess from the notice number.
func TestNoticeEmailsAreSignedAndWellFormed(t *testing.T) {
	t.Parallel()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	pub, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	record := "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(pub)

	sink, err := mailsink.Start(mailsink.Options{Keep: true})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	m, err := notify.NewMailer(notify.SMTPConfig{URL: sink.URL(), From: "ne-pas-repondre@ens.test", Key: testMailKey,
		DKIMKeyPEM: keyPEM, DKIMSelector: "ens2026"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	e, err := notify.RenderEmail(sample())
	if err != nil {
		t.Fatal(err)
	}
	msg, err := m.Build(12, 3, "g@example.fr", e)
	if err != nil {
		t.Fatal(err)
	}
	if r := m.Send(context.Background(), msg); r.Outcome != notify.Accepted {
		t.Fatalf("send: %+v", r)
	}
	raw := sink.Messages()[0]

	vs, err := dkim.VerifyWithOptions(bytes.NewReader(raw), &dkim.VerifyOptions{LookupTXT: func(domain string) ([]string, error) {
		if domain != "ens2026._domainkey.ens.test" {
			t.Errorf("DKIM key looked up at %s", domain)
		}
		return []string{record}, nil
	}})
	if err != nil || len(vs) != 1 || vs[0].Err != nil || vs[0].Domain != "ens.test" {
		t.Fatalf("DKIM verification: %v %+v", err, vs)
	}
	// Changing one character of the body breaks the signature.
	tampered := bytes.Replace(raw, []byte("Madame"), []byte("Madamf"), 1)
	if vs, _ := dkim.VerifyWithOptions(bytes.NewReader(tampered), &dkim.VerifyOptions{LookupTXT: func(string) ([]string, error) {
		return []string{record}, nil
	}}); len(vs) != 1 || vs[0].Err == nil {
		t.Fatal("a tampered body still verifies")
	}

	h, _ := mail.ReadMessage(bytes.NewReader(raw))
	if got := h.Header.Get("Return-Path"); got != "<"+m.BounceAddress(12)+">" || !strings.HasPrefix(got, "<bounces+12-") {
		t.Errorf("envelope sender %q, want the notice's VERP address", got)
	}
	if got := h.Header.Get("Auto-Submitted"); got != "auto-generated" {
		t.Errorf("Auto-Submitted: %q", got)
	}
	if got := h.Header.Get("Feedback-Id"); !strings.HasPrefix(got, "wave-3:opposition:") {
		t.Errorf("Feedback-ID: %q", got)
	}
	if id := h.Header.Get("Message-Id"); strings.Contains(id, "notice-12@") || !strings.HasPrefix(id, "<12.") || len(id) < 25 {
		t.Errorf("Message-ID %q is guessable", id)
	}
	ent, err := message.Read(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	ent.Walk(func(_ []int, part *message.Entity, _ error) error { //nolint:errcheck
		ct, _, _ := part.Header.ContentType()
		if !strings.HasPrefix(ct, "multipart/") {
			types = append(types, ct)
		}
		return nil
	})
	if len(types) != 2 || types[0] != "text/plain" || types[1] != "text/html" {
		t.Errorf("parts %v, want text/plain then text/html", types)
	}
}
