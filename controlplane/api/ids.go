package api

import (
	"crypto/rand"
	"encoding/base32"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/atollhq/atoll/controlplane/apierr"
)

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewID returns prefix_ followed by 128 random bits in lowercase base32.
func NewID(prefix string) string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return prefix + "_" + strings.ToLower(idEncoding.EncodeToString(b[:]))
}

// NewSecret returns a token secret: atl_ + 256 random bits.
func NewSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return TokenPrefix + strings.ToLower(idEncoding.EncodeToString(b[:]))
}

var idPattern = regexp.MustCompile(`^[a-z]+_[a-z2-7]{26}$`)

// CheckID validates a well-formed id of the given prefix.
func CheckID(field, prefix, id string) error {
	if id == "" {
		return apierr.InvalidField(field, "is required")
	}
	if !strings.HasPrefix(id, prefix+"_") || !idPattern.MatchString(id) {
		return apierr.InvalidField(field, "%q is not a valid id: expected %s_ followed by 26 characters [a-z2-7]", truncate(id, 80), prefix)
	}
	return nil
}

// truncate shortens s to at most n bytes without splitting a UTF-8
// character: error details are proto strings, which must be valid UTF-8 (a
// split character made WithDetails fail and dropped every field violation).
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return strings.ToValidUTF8(s[:n], "\ufffd") + "…"
}
