package main

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
)

// TestLogFormat: text for a person at a terminal, JSON for a collector, unless log.format
// says which.
func TestLogFormat(t *testing.T) {
	t.Parallel()
	cases := []struct {
		format   string
		terminal bool
		want     string
	}{
		{"auto", true, "text"},
		{"auto", false, "json"},
		{"", true, "text"},
		{"", false, "json"},
		{"text", false, "text"},
		{"json", true, "json"},
	}
	for _, tc := range cases {
		if got := logFormat(tc.format, tc.terminal); got != tc.want {
			t.Errorf("logFormat(%q, terminal %v) = %q, want %q", tc.format, tc.terminal, got, tc.want)
		}
	}
	for format, want := range map[string]string{"text": "level=INFO msg=hello", "json": `"msg":"hello"`, "auto": `"msg":"hello"`} {
		var b bytes.Buffer // not a terminal
		newLogger(&b, slog.LevelInfo, format).InfoContext(context.Background(), "hello")
		if !strings.Contains(b.String(), want) {
			t.Errorf("log.format %s wrote %q, want %q in it", format, b.String(), want)
		}
	}
}

func TestLogFormatValidated(t *testing.T) {
	t.Parallel()
	for format, ok := range map[string]bool{"auto": true, "text": true, "json": true, "yaml": false} {
		c, err := DevConfig(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		c.Log.Format = format
		err = c.Validate()
		if (err == nil) != ok || err != nil && !strings.Contains(err.Error(), "log.format") {
			t.Errorf("log.format %q: %v", format, err)
		}
	}
	c, err := DevConfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if c.Log.Format != "auto" {
		t.Errorf("log.format defaults to %q, want auto", c.Log.Format)
	}
}
