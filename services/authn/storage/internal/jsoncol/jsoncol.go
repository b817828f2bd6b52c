// Package jsoncol is how the SQL stores keep lists and label maps: as JSON text, an empty one
// written as [] or {} (never null) and read back as nil, so a value reads back the same
// whether it was stored nil or empty.
package jsoncol

import (
	"encoding/json"
	"fmt"
)

// Strings is a list as JSON: nil is [].
func Strings(s []string) string {
	if s == nil {
		s = []string{}
	}
	b, _ := json.Marshal(s) // cannot fail
	return string(b)
}

// Labels is a label map as JSON: nil is {}.
func Labels(l map[string][]string) string {
	if l == nil {
		l = map[string][]string{}
	}
	b, _ := json.Marshal(l) // cannot fail
	return string(b)
}

// DecodeStrings reads what Strings wrote; empty is nil.
func DecodeStrings(b []byte) ([]string, error) {
	var s []string
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("stored list: %w", err)
	}
	if len(s) == 0 {
		return nil, nil
	}
	return s, nil
}

// DecodeLabels reads what Labels wrote; empty is nil.
func DecodeLabels(b []byte) (map[string][]string, error) {
	var l map[string][]string
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, fmt.Errorf("stored labels: %w", err)
	}
	if len(l) == 0 {
		return nil, nil
	}
	return l, nil
}
