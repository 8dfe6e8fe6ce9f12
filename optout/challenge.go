package optout

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ProofOfWork lets a client whose address must wait make one more attempt at
// once, by solving a challenge in the browser: someone sharing an address
// with a guesser (a family, a workplace, a carrier's NAT) is never locked
// out, and every attempt beyond the limits costs the guesser about a second
// of CPU. The challenges follow the ALTCHA protocol (version 3, PBKDF2/SHA-256)
// that the form's widget speaks: they are made and checked here, self-hosted,
// with no third-party service.
//
// A challenge is signed, so nothing is stored until it is solved; a solution
// is spent once (a row of the limits table, expired with it). The per-code
// limits still apply to an attempt that a solution lets through.
type ProofOfWork struct {
	secret []byte
	// Cost is the number of PBKDF2 iterations of each try; checking a
	// solution costs the server one try.
	Cost int
	// Prefix is the hex digits a solution's derived key begins with: each
	// digit multiplies the tries a solution takes on average by 16.
	Prefix string
	// TTL is how long a challenge can be solved and used; at most the
	// limiter's TTL, so that a spent solution is remembered as long as it
	// could be used.
	TTL time.Duration
	Now func() time.Time
}

// NewProofOfWork returns challenges signed with a key derived from the code
// key (every `ens serve` process shares it), with the service's defaults:
// 1,000 iterations a try and three hex digits (4,096 tries on average, about
// a second in a browser, 0.2 ms to check), valid 10 minutes.
func NewProofOfWork(k Key) *ProofOfWork {
	return &ProofOfWork{secret: k.mac("proof-of-work challenge"), Cost: 1000, Prefix: "000", TTL: 10 * time.Minute, Now: time.Now}
}

// powAlgorithm is the key derivation every try runs: the widget's default.
const powAlgorithm = "PBKDF2/SHA-256"

// powParameters are a challenge's parameters, in the order of their names:
// they are signed as the JSON the widget's library signs (keys sorted).
type powParameters struct {
	Algorithm string `json:"algorithm"`
	Cost      int    `json:"cost"`
	ExpiresAt int64  `json:"expiresAt"`
	KeyLength int    `json:"keyLength"`
	KeyPrefix string `json:"keyPrefix"`
	Nonce     string `json:"nonce"`
	Salt      string `json:"salt"`
}

type powChallenge struct {
	Parameters powParameters `json:"parameters"`
	Signature  string        `json:"signature"`
}

// powPayload is what the widget posts once it has solved a challenge
// (base64 of this JSON, in the form field "altcha").
type powPayload struct {
	Challenge powChallenge `json:"challenge"`
	Solution  struct {
		Counter    uint32 `json:"counter"`
		DerivedKey string `json:"derivedKey"`
	} `json:"solution"`
}

func (p *ProofOfWork) sign(params powParameters) (string, error) {
	b, err := json.Marshal(params)
	if err != nil {
		return "", fmt.Errorf("signing a challenge: %w", err)
	}
	m := hmac.New(sha256.New, p.secret)
	m.Write(b)
	return hex.EncodeToString(m.Sum(nil)), nil
}

// widgetConfig is the widget's configuration: its challenge, inline (the
// widget fetches nothing), and no link to a third-party site.
type widgetConfig struct {
	Challenge                 powChallenge `json:"challenge"`
	HideFooter                bool         `json:"hideFooter"`
	HideLogo                  bool         `json:"hideLogo"`
	HumanInteractionSignature bool         `json:"humanInteractionSignature"`
}

// Challenge returns the widget's configuration (its configuration
// attribute, JSON) with a new challenge. It costs a signature, no row.
func (p *ProofOfWork) Challenge() (string, error) {
	params := powParameters{Algorithm: powAlgorithm, Cost: p.Cost, ExpiresAt: p.Now().Add(p.TTL).Unix(), KeyLength: 32,
		KeyPrefix: p.Prefix, Nonce: randomHex(), Salt: randomHex()}
	sig, err := p.sign(params)
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(widgetConfig{Challenge: powChallenge{Parameters: params, Signature: sig}, HideFooter: true, HideLogo: true})
	if err != nil {
		return "", fmt.Errorf("writing a challenge: %w", err)
	}
	return string(b), nil
}

func randomHex() string {
	b := make([]byte, 16)
	rand.Read(b) //nolint:errcheck // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

var errProof = errors.New("not a solved challenge of ours")

// check returns the nonce of a solved challenge of ours, still valid; what
// it costs the server is bounded: the signature and the expiry are checked
// before the one key derivation.
func (p *ProofOfWork) check(payload string) (string, error) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(payload))
	if err != nil || len(raw) > 2048 {
		return "", errProof
	}
	var pl powPayload
	if err := json.Unmarshal(raw, &pl); err != nil {
		return "", errProof
	}
	params := pl.Challenge.Parameters
	want, err := p.sign(params)
	if err != nil || !hmac.Equal([]byte(want), []byte(pl.Challenge.Signature)) ||
		params.Algorithm != powAlgorithm || params.ExpiresAt < p.Now().Unix() || params.KeyLength != 32 {
		return "", errProof
	}
	nonce, err1 := hex.DecodeString(params.Nonce)
	salt, err2 := hex.DecodeString(params.Salt)
	if err1 != nil || err2 != nil {
		return "", errProof
	}
	password := binary.BigEndian.AppendUint32(nonce, pl.Solution.Counter)
	key, err := pbkdf2.Key(sha256.New, string(password), salt, params.Cost, params.KeyLength)
	if err != nil || !strings.HasPrefix(hex.EncodeToString(key), params.KeyPrefix) {
		return "", errProof
	}
	return params.Nonce, nil
}

// spend checks a solution and records its challenge as used, in the limits
// table (the row expires with the others): it reports whether the solution
// may let one attempt through.
func (p *ProofOfWork) spend(ctx context.Context, l *Limiter, payload string) (bool, error) {
	nonce, err := p.check(payload)
	if err != nil {
		return false, nil
	}
	tag, err := l.Pool.Exec(ctx, `INSERT INTO rate_limit (key, attempts, touched_at) VALUES ($1, 0, $2) ON CONFLICT (key) DO NOTHING`,
		"pow:"+nonce, l.Now())
	if err != nil {
		return false, fmt.Errorf("spending a solved challenge: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// passTTL is how long the pages that follow a successful step let their
// code through a waiting address.
const passTTL = 15 * time.Minute

// pass returns what the next steps of the form carry for a code the client
// has just proven it holds (with its birth date): its further steps go
// through even while the address waits, without another challenge. It
// opens nothing else: any other code is limited as before.
func (s *Service) pass(codeHash []byte) string {
	exp := s.Clock.Now().Add(passTTL).Unix()
	return fmt.Sprintf("%d.%s", exp, hex.EncodeToString(s.Key.mac("form pass", hex.EncodeToString(codeHash), fmt.Sprint(exp))[:16]))
}

func (s *Service) passValid(pass string, codeHash []byte) bool {
	exp, mac, ok := strings.Cut(pass, ".")
	if !ok || len(mac) != 32 {
		return false
	}
	if t, err := strconv.ParseInt(exp, 10, 64); err != nil || t < s.Clock.Now().Unix() {
		return false
	}
	want := hex.EncodeToString(s.Key.mac("form pass", hex.EncodeToString(codeHash), exp)[:16])
	return hmac.Equal([]byte(want), []byte(mac))
}

// passFor is the pass of a request's code, for the pages that follow a
// step it succeeded in (the pair was an account's).
func (s *Service) passFor(r Request) string {
	code, err := ParseCode(r.Code)
	if err != nil {
		return ""
	}
	return s.pass(s.Key.LookupHash(code))
}
