// Package config holds the small pieces every Portcullis config section shares:
// strict YAML decoding, durations, and collecting every problem at once.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"time"

	yaml "go.yaml.in/yaml/v3"
)

// Duration is a time.Duration written as "30s", "5m" in YAML.
type Duration time.Duration

// UnmarshalYAML accepts Go duration strings only, so "5" (no unit) is an error, not 5ns.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return fmt.Errorf("line %d: duration must be a string like \"30s\"", n.Line)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d: invalid duration %q", n.Line, s)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration back in its readable form.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Strict decodes YAML into out, rejecting unknown fields so a typo is an error
// instead of a silently ignored setting.
func Strict(data []byte, out any) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(out); err != nil {
		if errors.Is(err, io.EOF) { // an empty document is the zero value
			return nil
		}
		return err
	}
	return nil
}

// StrictNode decodes a sub-document (a backend's `config:` block) strictly.
// yaml.Node.Decode ignores KnownFields, so the node is re-encoded first.
func StrictNode(n *yaml.Node, out any) error {
	if n == nil || n.Kind == 0 {
		return nil
	}
	data, err := yaml.Marshal(n)
	if err != nil {
		return err
	}
	return Strict(data, out)
}

// Problems collects validation problems under a path prefix so a user sees all of them at once.
type Problems struct {
	list []string
}

// Addf records one problem at path.
func (p *Problems) Addf(path, format string, args ...any) {
	p.list = append(p.list, path+": "+fmt.Sprintf(format, args...))
}

// AddErrs records errors returned by a nested Validate under path.
func (p *Problems) AddErrs(path string, errs []error) {
	for _, e := range errs {
		p.list = append(p.list, path+"."+e.Error())
	}
}

// Err returns nil when nothing was recorded, else one error listing every problem.
func (p *Problems) Err() error {
	if len(p.list) == 0 {
		return nil
	}
	return &Error{Problems: append([]string(nil), p.list...)}
}

// Errs returns the problems as errors, for a section's Validate() []error.
func (p *Problems) Errs() []error {
	out := make([]error, 0, len(p.list))
	for _, s := range p.list {
		out = append(out, errors.New(s))
	}
	return out
}

// Error is an invalid configuration; it lists every problem found.
type Error struct{ Problems []string }

func (e *Error) Error() string {
	return fmt.Sprintf("invalid configuration (%d problems):\n  - %s", len(e.Problems), strings.Join(e.Problems, "\n  - "))
}

// DecodeTyped is the second step of decoding a pluggable section ({type: X, config: {...}}):
// it looks the type up in the one list of known types and decodes config strictly into it.
func DecodeTyped[T any](kind string, types map[string]func() T, typ string, n *yaml.Node) (T, error) {
	var zero T
	mk, ok := types[typ]
	if !ok {
		names := make([]string, 0, len(types))
		for name := range types {
			names = append(names, name)
		}
		slices.Sort(names)
		return zero, fmt.Errorf("unknown %s type %q (known: %s)", kind, typ, strings.Join(names, ", "))
	}
	c := mk()
	if err := StrictNode(n, c); err != nil {
		return zero, fmt.Errorf("config: %w", err)
	}
	return c, nil
}

// EncodeTyped is DecodeTyped the other way: the type name c has in types, and c as the node
// of its config section. Programs that build a configuration (the bench, the e2e suite)
// use it rather than writing YAML by hand.
func EncodeTyped[T any](kind string, types map[string]func() T, c T) (string, yaml.Node, error) {
	var n yaml.Node
	want := reflect.TypeOf(c)
	for name, mk := range types {
		if reflect.TypeOf(mk()) == want {
			return name, n, n.Encode(c)
		}
	}
	return "", n, fmt.Errorf("%T is not a known %s type", c, kind)
}
