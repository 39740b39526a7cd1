package events

import (
	"encoding/json"
	"fmt"
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
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"30s\"")
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %v", s, err)
	}
	*d = Duration(v)
	return nil
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

// ParseSize parses a size such as "512Mi".
func ParseSize(s string) (Size, error) {
	num, mult := strings.TrimSpace(s), int64(1)
	for _, suf := range sizeSuffixes {
		if strings.HasSuffix(num, suf.s) {
			num, mult = strings.TrimSuffix(num, suf.s), suf.m
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("size %q: want a non-negative whole number with an optional suffix such as Mi or Gi", s)
	}
	if n > (1<<62)/mult {
		return 0, fmt.Errorf("size %q: too large", s)
	}
	return Size(n * mult), nil
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

// UnmarshalJSON accepts a string such as "512Mi" or a plain number of bytes.
func (z *Size) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n int64
		if json.Unmarshal(b, &n) != nil || n < 0 {
			return fmt.Errorf("size must be a string such as \"512Mi\"")
		}
		*z = Size(n)
		return nil
	}
	v, err := ParseSize(s)
	if err != nil {
		return err
	}
	*z = v
	return nil
}
