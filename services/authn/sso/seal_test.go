package sso

import (
	"bytes"
	"errors"
	"testing"
)

func TestSeal(t *testing.T) {
	t.Parallel()
	key := bytes.Repeat([]byte{7}, KeySize)
	s, err := NewSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewSealer(bytes.Repeat([]byte{8}, KeySize))
	if err != nil {
		t.Fatal(err)
	}
	const token = "ory_rt_refresh-token"
	sealed := s.Seal("alice", token)
	if bytes.Contains(sealed, []byte(token)) || sealed[0] != sealVersion {
		t.Fatalf("sealed %x", sealed)
	}
	if again := s.Seal("alice", token); bytes.Equal(again, sealed) {
		t.Fatal("two seals of one token are equal: the nonce is not fresh")
	}
	if got, err := s.Open("alice", sealed); err != nil || got != token {
		t.Fatalf("Open = %q, %v", got, err)
	}
	flip := func(i int) []byte {
		b := bytes.Clone(sealed)
		b[i] ^= 1
		return b
	}
	cases := []struct {
		name    string
		s       *Sealer
		subject string
		sealed  []byte
	}{
		{"wrong key", other, "alice", sealed},
		{"wrong subject", s, "bob", sealed},
		{"subject prefix", s, "alic", sealed},
		{"tampered version", s, "alice", flip(0)},
		{"tampered nonce", s, "alice", flip(1)},
		{"tampered ciphertext", s, "alice", flip(14)},
		{"tampered tag", s, "alice", flip(len(sealed) - 1)},
		{"truncated", s, "alice", sealed[:len(sealed)-1]},
		{"too short", s, "alice", sealed[:5]},
		{"empty", s, "alice", nil},
	}
	for _, tc := range cases {
		if got, err := tc.s.Open(tc.subject, tc.sealed); !errors.Is(err, ErrUnsealable) || got != "" {
			t.Errorf("%s: Open = %q, %v; want ErrUnsealable", tc.name, got, err)
		}
	}
	if _, err := NewSealer(key[:16]); err == nil {
		t.Fatal("a 16-byte key was accepted")
	}
}
