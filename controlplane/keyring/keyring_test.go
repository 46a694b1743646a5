package keyring

import (
	"strings"
	"testing"
)

func TestSealOpenAcrossReload(t *testing.T) {
	dir := t.TempDir()
	k, err := Open(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	s, err := k.Seal("s3cret")
	if err != nil || !strings.HasPrefix(s, Prefix) || strings.Contains(s, "s3cret") {
		t.Fatalf("seal: %q %v", s, err)
	}
	again, err := Open(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := again.Open(s); err != nil || p != "s3cret" {
		t.Fatalf("open after reload: %q %v", p, err)
	}
	if p, _ := again.Open("plain"); p != "plain" {
		t.Fatalf("unsealed value changed: %q", p)
	}
	other, _ := Open(t.TempDir(), true)
	if _, err := other.Open(s); err != ErrBadSecret {
		t.Fatalf("another cluster's key opened it: %v", err)
	}
	joining, _ := Open(t.TempDir(), false)
	if _, err := joining.Seal("x"); err != ErrNoKey {
		t.Fatalf("no key yet: %v", err)
	}
	if err := joining.Install(k.Key()); err != nil {
		t.Fatal(err)
	}
	if p, err := joining.Open(s); err != nil || p != "s3cret" {
		t.Fatalf("installed key: %q %v", p, err)
	}
}
