package optout

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Alphabet is Crockford's base 32: no I, L, O, U.
const Alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// Code lengths: 11 secret symbols (55 bits) and one check symbol.
const (
	SecretSymbols = 11
	CodeSymbols   = SecretSymbols + 1
)

// Parse errors. ErrMistyped means the check symbol shows a typo, which the
// public channels report differently from a wrong code.
var (
	ErrMalformed = errors.New("a code is 12 symbols of 0-9 and A-Z")
	ErrMistyped  = errors.New("the code's check symbol does not match: a symbol was mistyped")
)

// Key is the server secret codes derive from (ENS_CODE_KEY).
type Key []byte

// MinKeyBytes is the shortest key accepted.
const MinKeyBytes = 32

// ParseKey decodes a hex key of at least 32 bytes.
func ParseKey(s string) (Key, error) {
	b, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, errors.New("code key must be hex")
	}
	if len(b) < MinKeyBytes {
		return nil, fmt.Errorf("code key must be at least %d bytes (%d hex characters)", MinKeyBytes, 2*MinKeyBytes)
	}
	return Key(b), nil
}

func (k Key) mac(purpose string, parts ...string) []byte {
	m := hmac.New(sha256.New, k)
	m.Write([]byte(purpose))
	for _, p := range parts {
		m.Write([]byte{0})
		m.Write([]byte(p))
	}
	return m.Sum(nil)
}

// Code is a normalised 12-symbol opposition code. Its String is the only
// place it is formatted; never log it.
type Code string

// Derive returns the code of an account: the same account always gets the
// same code, so a retried email or a fallback letter carries the one code.
func (k Key) Derive(accountID int64) Code {
	sum := k.mac("ens-code-v1", strconv.FormatInt(accountID, 10))
	v := binary.BigEndian.Uint64(sum[:8]) >> (64 - 5*SecretSymbols)
	var b [CodeSymbols]byte
	for i := SecretSymbols - 1; i >= 0; i-- {
		b[i] = Alphabet[v&31]
		v >>= 5
	}
	b[SecretSymbols] = Alphabet[checkSymbol(b[:SecretSymbols])]
	return Code(b[:])
}

// lookupHashBytes is the length of a code's lookup hash: HMAC-SHA-256 cut
// to 64 bits, more than a code's 55 secret bits. It is an index key, not a
// MAC anyone verifies: a guesser submits codes, never hashes, and the odds
// that two of 65 million different codes share a hash (about one in
// 9,000) are handled as two accounts sharing a code are, by birth date.
const lookupHashBytes = 8

// LookupHash is what the database stores to find a code's account.
func (k Key) LookupHash(c Code) []byte {
	return k.mac("ens-code-lookup-v1", string(c))[:lookupHashBytes]
}

// NIRKey derives the key for the purge traces' NIR hashes.
func (k Key) NIRKey() []byte { return k.mac("ens-nir-key-v1") }

// MailKey derives the key that tags bounce addresses and Message-IDs and
// hashes recipients (notify.SMTPConfig.Key).
func (k Key) MailKey() []byte { return k.mac("ens-mail-key-v1") }

// String formats the code as XXXX-XXXX-XXXX.
func (c Code) String() string {
	if len(c) != CodeSymbols {
		return string(c)
	}
	return string(c[0:4]) + "-" + string(c[4:8]) + "-" + string(c[8:12])
}

// ParseCode normalises what a person typed: case, spaces and dashes are
// ignored, O reads as 0, I and L as 1. It tells a malformed entry, a typo
// (wrong check symbol) and a well-formed code apart.
func ParseCode(s string) (Code, error) {
	if len(s) > 64 {
		return "", ErrMalformed
	}
	b := make([]byte, 0, CodeSymbols)
	for _, r := range s {
		switch {
		case r == ' ' || r == '-' || r == '\t' || r == '\u00a0':
			continue
		case r >= 'a' && r <= 'z':
			r -= 'a' - 'A'
		}
		switch r {
		case 'O':
			r = '0'
		case 'I', 'L':
			r = '1'
		}
		if r > 127 || strings.IndexByte(Alphabet, byte(r)) < 0 {
			return "", ErrMalformed
		}
		b = append(b, byte(r))
		if len(b) > CodeSymbols {
			return "", ErrMalformed
		}
	}
	if len(b) != CodeSymbols {
		return "", ErrMalformed
	}
	if Alphabet[checkSymbol(b[:SecretSymbols])] != b[SecretSymbols] {
		return "", ErrMistyped
	}
	return Code(b), nil
}

// checkSymbol is the Luhn mod N check character (N = 32) over the alphabet:
// from the rightmost symbol, every second code point is doubled and its
// base-32 digits summed.
func checkSymbol(payload []byte) int {
	const n = 32
	factor, sum := 2, 0
	for i := len(payload) - 1; i >= 0; i-- {
		addend := factor * strings.IndexByte(Alphabet, payload[i])
		factor = 3 - factor
		sum += addend/n + addend%n
	}
	return (n - sum%n) % n
}
