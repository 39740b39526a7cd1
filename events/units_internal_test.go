package events

import (
	"encoding/json"
	"testing"
)

// FuzzPlainString: whatever plainString reads, json.Unmarshal reads as the
// same string.
func FuzzPlainString(f *testing.F) {
	for _, s := range []string{`"30s"`, `"512Mi"`, `""`, `"a\"b"`, `"\u0033s"`, `"µs"`, "\"\xff\"", "\"\t\"", `"`, `12`, `null`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, ok := plainString(b)
		if !ok {
			return
		}
		var want string
		if err := json.Unmarshal(b, &want); err != nil || got != want {
			t.Fatalf("plainString(%q) = %q, json.Unmarshal gives %q, %v", b, got, want, err)
		}
	})
}
