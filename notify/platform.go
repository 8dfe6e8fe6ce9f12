package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Headers of a push to the platform.
const (
	HeaderTimestamp   = "X-Ens-Timestamp" // Unix seconds when the push was signed
	HeaderSignature   = "X-Ens-Signature" // "v1=" + hex HMAC-SHA256(key, timestamp + "." + body)
	HeaderIdempotency = "Idempotency-Key" // the same for every retry of the same changes
	SignatureMaxAge   = 5 * time.Minute   // a receiver refuses older signatures (replays)
	signaturePrefix   = "v1="
)

// Platform pushes batches of the change feed to the Mon espace santé
// platform (ENS_PLATFORM_URL), signed with ENS_PLATFORM_KEY.
type Platform struct {
	URL    string
	Key    []byte
	Client *http.Client // nil: a client with a 30 s timeout
}

// PlatformError is a push the platform refused or failed to answer: its
// status (0 when no answer came).
type PlatformError struct {
	Status int
	Err    error
}

func (e *PlatformError) Error() string {
	if e.Status == 0 {
		return "pushing changes to the platform: " + e.Err.Error()
	}
	return fmt.Sprintf("pushing changes to the platform: status %d", e.Status)
}

func (e *PlatformError) Unwrap() error { return e.Err }

// Push posts body (a JSON batch of changes) under idempotencyKey, signed
// at now; any 2xx answer acknowledges it.
func (p *Platform) Push(ctx context.Context, body []byte, idempotencyKey string, now time.Time) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.URL, bytes.NewReader(body))
	if err != nil {
		return &PlatformError{Err: err}
	}
	ts := strconv.FormatInt(now.Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderSignature, signaturePrefix+hex.EncodeToString(PlatformSignature(p.Key, ts, body)))
	req.Header.Set(HeaderIdempotency, idempotencyKey)
	c := p.Client
	if c == nil {
		c = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := c.Do(req)
	if err != nil {
		return &PlatformError{Err: err}
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode/100 != 2 {
		return &PlatformError{Status: resp.StatusCode, Err: errors.New(resp.Status)}
	}
	return nil
}

// PlatformSignature is HMAC-SHA256 under key of the timestamp, a dot, and
// the body.
func PlatformSignature(key []byte, timestamp string, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(timestamp))
	m.Write([]byte("."))
	m.Write(body)
	return m.Sum(nil)
}

// VerifyPlatformPush is what a receiver checks: the signature over the
// timestamp and the body, and a timestamp within SignatureMaxAge of now.
func VerifyPlatformPush(key []byte, h http.Header, body []byte, now time.Time) error {
	ts := h.Get(HeaderTimestamp)
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errors.New("no timestamp")
	}
	if d := now.Sub(time.Unix(sec, 0)); d > SignatureMaxAge || d < -SignatureMaxAge {
		return errors.New("timestamp too old or in the future: a replay?")
	}
	sig, err := hex.DecodeString(strings.TrimPrefix(h.Get(HeaderSignature), signaturePrefix))
	if err != nil || !hmac.Equal(sig, PlatformSignature(key, ts, body)) {
		return errors.New("signature does not match")
	}
	return nil
}
