package events

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration that travels as a Go duration string ("30s").
type Duration time.Duration

// MarshalJSON encodes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON accepts a duration string such as "1m30s".
func (d *Duration) UnmarshalJSON(b []byte) error {
	s, ok := plainString(b)
	if !ok && json.Unmarshal(b, &s) != nil {
		return unitError[Duration](b, "want a duration string such as \"30s\"")
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return unitError[Duration](b, "want a duration such as \"30s\" or \"1m30s\"")
	}
	*d = Duration(v)
	return nil
}

// plainString returns the JSON string b holds when it is printable ASCII
// without escapes: what json.Unmarshal would return for it, without
// json.Unmarshal's cost, which dominated decoding the units of a spec.
func plainString(b []byte) (string, bool) {
	if len(b) < 2 || b[0] != '"' || b[len(b)-1] != '"' {
		return "", false
	}
	for _, c := range b[1 : len(b)-1] {
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			return "", false
		}
	}
	return string(b[1 : len(b)-1]), true
}

// unitError describes a value that does not decode as a T. It is a
// *json.UnmarshalTypeError so that the decoder adds the field's path to it.
func unitError[T any](b []byte, why string) error {
	if len(b) > 64 {
		b = append(b[:64:64], "..."...)
	}
	return &json.UnmarshalTypeError{Value: fmt.Sprintf("%s (%s)", b, why), Type: reflect.TypeFor[T]()}
}

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// Size is a byte count that travels as a string with an optional binary
// suffix: "512Mi", "2Gi", "1048576". Decimal suffixes (K, M, G, T) are
// accepted as well and mean powers of 1000.
type Size int64

var sizeSuffixes = []struct {
	s string
	m int64
}{
	{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40},
	{"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12},
}

// maxSize is the largest size accepted: 4Ei, far beyond any real limit, and
// small enough that no suffix multiplication overflows.
const maxSize = 1 << 62

// ParseSize parses a size such as "512Mi".
func ParseSize(s string) (Size, error) {
	z, why := parseSize(s)
	if why != "" {
		return 0, fmt.Errorf("size %q: %s", s, why)
	}
	return z, nil
}

func parseSize(s string) (Size, string) {
	num, mult := strings.TrimSpace(s), int64(1)
	for _, suf := range sizeSuffixes {
		if strings.HasSuffix(num, suf.s) {
			num, mult = strings.TrimSuffix(num, suf.s), suf.m
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 {
		return 0, "want a non-negative whole number with an optional suffix such as Mi or Gi"
	}
	if n > maxSize/mult {
		return 0, "larger than 4Ei"
	}
	return Size(n * mult), ""
}

// String formats z with the largest binary suffix that divides it exactly.
func (z Size) String() string {
	for _, suf := range []struct {
		s string
		m int64
	}{{"Ti", 1 << 40}, {"Gi", 1 << 30}, {"Mi", 1 << 20}, {"Ki", 1 << 10}} {
		if z != 0 && int64(z)%suf.m == 0 {
			return strconv.FormatInt(int64(z)/suf.m, 10) + suf.s
		}
	}
	return strconv.FormatInt(int64(z), 10)
}

// MarshalJSON encodes z as a string such as "512Mi".
func (z Size) MarshalJSON() ([]byte, error) { return json.Marshal(z.String()) }

// UnmarshalJSON accepts a string such as "512Mi" or a plain number of
// bytes, within the limits of [ParseSize].
func (z *Size) UnmarshalJSON(b []byte) error {
	s, ok := plainString(b)
	if !ok && json.Unmarshal(b, &s) != nil {
		s = string(b) // a plain number, or a value ParseSize refuses
	}
	v, why := parseSize(s)
	if why != "" {
		return unitError[Size](b, why)
	}
	*z = v
	return nil
}
