// Package telemetry carries request ids across gRPC, builds the JSON logger, and holds the
// Prometheus instruments every service shares.
package telemetry

import (
	"os"

	"context"
	"github.com/mattn/go-isatty"
	"io"
	"log/slog"

	"github.com/portcullis-dev/portcullis/internal/randid"
)

type ctxKey struct{}

// MetadataKey carries the request id in gRPC metadata.
const MetadataKey = "x-request-id"

// WithRequestID returns ctx carrying id.
func WithRequestID(ctx context.Context, id string) context.Context {
	return &requestIDContext{Context: ctx, id: id}
}

// requestIDContext is context.WithValue's valueCtx for the request id, in one allocation
// where WithValue needs two (the context and the id boxed in an interface).
type requestIDContext struct {
	context.Context
	id string
}

func (c *requestIDContext) Value(key any) any {
	if key == (ctxKey{}) {
		return c
	}
	return c.Context.Value(key)
}

// RequestID returns the id carried by ctx, or "".
func RequestID(ctx context.Context) string {
	if c, ok := ctx.Value(ctxKey{}).(*requestIDContext); ok {
		return c.id
	}
	return ""
}

// NewRequestID returns a random 16-hex-digit id.
func NewRequestID() string { return randid.Hex(8) }

// ValidRequestID accepts a caller-supplied id only if it is short and printable, so a client
// cannot inject log lines or bloat them.
func ValidRequestID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// NewLogger returns a JSON logger that adds the context's request id, and trace and span
// ids when tracing is on, to every record.
func NewLogger(w io.Writer, level slog.Leveler) *slog.Logger {
	return slog.New(requestIDHandler{slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})})
}

// NewTextLogger is NewLogger writing slog's key=value text, for a person at a terminal.
func NewTextLogger(w io.Writer, level slog.Leveler) *slog.Logger {
	return slog.New(requestIDHandler{slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})})
}

type requestIDHandler struct{ slog.Handler }

func (h requestIDHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := RequestID(ctx); id != "" {
		r.AddAttrs(slog.String("request_id", id))
	}
	r.AddAttrs(traceAttrs(ctx)...)
	return h.Handler.Handle(ctx, r)
}

func (h requestIDHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return requestIDHandler{h.Handler.WithAttrs(as)}
}

func (h requestIDHandler) WithGroup(name string) slog.Handler {
	return requestIDHandler{h.Handler.WithGroup(name)}
}

// NewLoggerFormat writes text for a person at a terminal and JSON for a log collector; format
// is log.format: auto (the default) picks by whether w is a terminal.
func NewLoggerFormat(w io.Writer, level slog.Leveler, format string) *slog.Logger {
	if LogFormat(format, isTerminal(w)) == "text" {
		return NewTextLogger(w, level)
	}
	return NewLogger(w, level)
}

// LogFormat resolves log.format's auto to text or json.
func LogFormat(format string, terminal bool) string {
	if format == "" || format == "auto" {
		if terminal {
			return "text"
		}
		return "json"
	}
	return format
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}
