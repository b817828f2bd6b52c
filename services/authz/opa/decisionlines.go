package opa

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/version"

	"github.com/portcullis-dev/portcullis/pkg/scope"
	"github.com/portcullis-dev/portcullis/services/authz"
)

// The fields every entry shares with OPA's decision log plugin, whose console lines log
// collectors already parse.
const (
	decisionLogID = "portcullis-authz" // labels.id
	decisionPath  = "portcullis/authz/allowed"
)

// lineSink writes each decision as one JSON line to standard output or a file: the
// fields, names and values of the line OPA's decision log plugin printed (its console
// logger marshalled a map, so the keys are in sorted order), written straight from the
// decision. The plugin built an AST of every entry and evaluated its mask and drop
// queries, though none can be configured here; that cost more than the decision.
//
// The write is synchronous, under a lock, in the goroutine that decided: a slow reader of
// standard output slows the token endpoint instead of losing decisions, and a line is in
// the kernel before its token is issued. An audit log that drops entries when it falls
// behind loses them exactly when something unusual is going on; a pipe's own buffer
// absorbs short stalls. A failed write is counted (reason write_error) and logged at WARN.
type lineSink struct {
	mu     sync.Mutex
	w      io.Writer
	file   *os.File // nil for standard output
	labels []byte   // the labels object, the same for every line
	drops  *dropCounter
	bufs   sync.Pool
}

func openLineSink(file string, drops *dropCounter) (*lineSink, error) {
	labels, err := json.Marshal(map[string]string{"id": decisionLogID, "version": version.Version})
	if err != nil {
		return nil, err
	}
	s := &lineSink{w: os.Stdout, labels: labels, drops: drops}
	if file != "" {
		f, err := os.OpenFile(file, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return nil, fmt.Errorf("decision_logs.file: %w", err)
		}
		s.file, s.w = f, f
	}
	return s, nil
}

// decisionEntry is what one line says.
type decisionEntry struct {
	id, revision    string
	at              time.Time
	traceID, spanID string
	req             *authz.Request
	granted         []scope.Scope
	reasons         []authz.Reason
}

// maxPooledLine keeps an unusually long line's buffer from staying in the pool.
const maxPooledLine = 64 << 10

func (s *lineSink) log(e decisionEntry) {
	bp, _ := s.bufs.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	b := appendDecisionLine((*bp)[:0], s.labels, e)
	s.mu.Lock()
	_, err := s.w.Write(b)
	s.mu.Unlock()
	if err != nil {
		s.drops.add("write_error", 1, err)
	}
	if cap(b) <= maxPooledLine {
		*bp = b
		s.bufs.Put(bp)
	}
}

func (s *lineSink) close() {
	if s.file == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = s.file.Close()
}

// appendDecisionLine appends e as OPA's plugin wrote it, keys sorted, and a newline.
func appendDecisionLine(b, labels []byte, e decisionEntry) []byte {
	b = append(b, '{')
	if len(e.reasons) > 0 {
		b = append(b, `"custom":{"denied":[`...)
		for i, r := range e.reasons {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"action":`...)
			b = appendJSONString(b, r.Action)
			b = append(b, `,"class":`...)
			b = appendJSONString(b, r.Class)
			b = append(b, `,"name":`...)
			b = appendJSONString(b, r.Name)
			b = append(b, `,"reason":`...)
			b = appendJSONString(b, r.Reason)
			b = append(b, `,"type":`...)
			b = appendJSONString(b, r.Type)
			b = append(b, '}')
		}
		b = append(b, "]},"...)
	}
	b = append(b, `"decision_id":`...)
	b = appendJSONString(b, e.id)
	b = append(b, `,"input":`...)
	b = appendInput(b, e.req)
	b = append(b, `,"labels":`...)
	b = append(b, labels...)
	b = append(b, `,"msg":"Decision Log","path":"`+decisionPath+`","result":{"granted":[`...)
	for i, s := range e.granted {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendScope(b, s)
	}
	b = append(b, "]}"...)
	if e.revision != "" {
		b = append(b, `,"revision":`...)
		b = appendJSONString(b, e.revision)
	}
	if e.spanID != "" {
		b = append(b, `,"span_id":`...)
		b = appendJSONString(b, e.spanID)
	}
	b = append(b, `,"timestamp":"`...)
	b = e.at.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	if e.traceID != "" {
		b = append(b, `,"trace_id":`...)
		b = appendJSONString(b, e.traceID)
	}
	return append(b, `,"type":"openpolicyagent.org/decision_logs"}`+"\n"...)
}

// appendInput appends the policy's input (inputValue) with its keys sorted.
func appendInput(b []byte, req *authz.Request) []byte {
	id := &req.Identity
	b = append(b, `{"client_id":`...)
	b = appendJSONString(b, req.ClientID)
	b = append(b, `,"identity":{"anonymous":`...)
	if id.Anonymous {
		b = append(b, "true"...)
	} else {
		b = append(b, "false"...)
	}
	b = append(b, `,"backend":`...)
	b = appendJSONString(b, id.Backend)
	b = append(b, `,"groups":`...)
	b = appendJSONStrings(b, id.Groups)
	b = append(b, `,"labels":{`...)
	var small [8]string
	keys := small[:0]
	for k := range id.Labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
		b = append(b, ':')
		b = appendJSONStrings(b, id.Labels[k])
	}
	b = append(b, '}')
	if id.PATName != "" {
		b = append(b, `,"pat_name":`...)
		b = appendJSONString(b, id.PATName)
	}
	b = append(b, `,"subject":`...)
	b = appendJSONString(b, id.Subject)
	b = append(b, `},"remote_addr":`...)
	b = appendJSONString(b, req.RemoteAddr)
	b = append(b, `,"scopes":[`...)
	for i, s := range req.Requested {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"actions":`...)
		b = appendJSONStrings(b, s.Actions)
		b = append(b, `,"class":`...)
		b = appendJSONString(b, s.Class)
		b = append(b, `,"name":`...)
		b = appendJSONString(b, s.Name)
		b = append(b, `,"type":`...)
		b = appendJSONString(b, s.Type)
		b = append(b, '}')
	}
	b = append(b, `],"service":`...)
	b = appendJSONString(b, req.Service)
	return append(b, '}')
}

func appendJSONStrings(b []byte, ss []string) []byte {
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, s)
	}
	return append(b, ']')
}

const hexDigits = "0123456789abcdef"

// jsonSafe holds the ASCII bytes encoding/json writes as they are.
var jsonSafe = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// appendJSONString appends s quoted as the plugin's line had it: encoding/json's quoting
// (<, > and & escaped, U+2028 and U+2029 escaped) of the string after a JSON round trip,
// which turned each invalid UTF-8 byte into U+FFFD, written as is.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	b = appendJSONChars(b, s)
	return append(b, '"')
}

// appendScope appends the quoted s.String() without building it: escaping goes character
// by character, and the separators need none.
func appendScope(b []byte, s scope.Scope) []byte {
	b = append(b, '"')
	b = appendJSONChars(b, s.Type)
	if s.Class != "" {
		b = append(b, '(')
		b = appendJSONChars(b, s.Class)
		b = append(b, ')')
	}
	b = append(b, ':')
	b = appendJSONChars(b, s.Name)
	b = append(b, ':')
	for i, a := range s.Actions {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONChars(b, a)
	}
	return append(b, '"')
}

// appendJSONChars is appendJSONString without the quotes.
func appendJSONChars(b []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if jsonSafe[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, "\uFFFD"...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	return append(b, s[start:]...)
}
