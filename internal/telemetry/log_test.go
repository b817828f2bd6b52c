package telemetry

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
		if got := LogFormat(tc.format, tc.terminal); got != tc.want {
			t.Errorf("LogFormat(%q, terminal %v) = %q, want %q", tc.format, tc.terminal, got, tc.want)
		}
	}
	for format, want := range map[string]string{"text": "level=INFO msg=hello", "json": `"msg":"hello"`, "auto": `"msg":"hello"`} {
		var b bytes.Buffer // not a terminal
		NewLoggerFormat(&b, slog.LevelInfo, format).InfoContext(context.Background(), "hello")
		if !strings.Contains(b.String(), want) {
			t.Errorf("log.format %s wrote %q, want %q in it", format, b.String(), want)
		}
	}
}
