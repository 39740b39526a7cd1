package journal

import (
	"encoding/json"
	"unicode/utf8"

	jsonv2 "github.com/go-json-experiment/json"

	"github.com/berthhq/berth/events"
)

// decodeEvent decodes one journal document into the same Event that
// events.DecodeEvent returns. Decoding dominates the cost of a replay, so
// documents in the form Event.Marshal writes (known fields with exact
// names, strings without escapes, data last) are read in place; anything
// else, and every document DecodeEvent would refuse, goes through
// DecodeEvent, which also words the errors.
//
// With data set, decodeEvent also returns the event's data decoded as
// events.DecodeData decodes it (nil when there is none, or when it does
// not decode: the fold then decodes it again and words the error).
func decodeEvent(b []byte, in *interner, data bool) (events.Event, any, error) {
	ev, ok := fastDecode(b, in)
	var d any
	if ok && data {
		d = decodeData(&ev)
	}
	// Decoding the data checked that it is valid JSON; the fast path did not.
	if !ok || (d == nil && len(ev.Data) > 0 && !json.Valid(ev.Data)) {
		var err error
		if ev, err = events.DecodeEvent(b); err != nil {
			return ev, nil, err
		}
		if data {
			d, _ = events.DecodeData(&ev)
		}
	}
	return ev, d, nil
}

// interner holds the few distinct values of the fields that repeat from
// event to event (spec version, source, type, content type), so that
// decoding them does not allocate. It is not safe for concurrent use; a
// nil interner interns nothing.
type interner struct {
	last [4]string // the last value of each field, the likeliest next
	all  map[string]string
}

// The fields an interner holds.
const (
	internSpecVersion = iota
	internSource
	internType
	internContentType
)

// str returns b as a string: the one the interner holds, if it does.
func (in *interner) str(field int, b []byte) string {
	if in == nil {
		return string(b)
	}
	if s := in.last[field]; s == string(b) {
		return s
	}
	s, ok := in.all[string(b)]
	if !ok {
		s = string(b)
		if in.all == nil {
			in.all = map[string]string{}
		}
		if len(in.all) < 64 {
			in.all[s] = s
		}
	}
	in.last[field] = s
	return s
}

func fastDecode(b []byte, in *interner) (ev events.Event, ok bool) {
	s := scanner{b: b}
	if !s.byte('{') {
		return ev, false
	}
	var seen uint16
	for first := true; !s.byte('}'); first = false {
		if !first && !s.byte(',') {
			return ev, false
		}
		k, ok := s.raw()
		if !ok || !s.byte(':') {
			return ev, false
		}
		var bit uint16
		switch string(k) {
		case "specversion":
			bit, ok = 1<<0, s.intern(&ev.SpecVersion, in, internSpecVersion)
		case "id":
			bit, ok = 1<<1, s.str(&ev.ID)
		case "source":
			bit, ok = 1<<2, s.intern(&ev.Source, in, internSource)
		case "type":
			bit, ok = 1<<3, s.intern(&ev.Type, in, internType)
		case "subject":
			bit, ok = 1<<4, s.str(&ev.Subject)
		case "datacontenttype":
			bit, ok = 1<<5, s.intern(&ev.ContentType, in, internContentType)
		case "berthcommand":
			bit, ok = 1<<6, s.str(&ev.Command)
		case "time":
			var t []byte
			t, ok = s.raw()
			bit, ok = 1<<7, ok && ev.Time.UnmarshalText(t) == nil
		case "berthschema":
			bit = 1 << 8
			ev.Schema, ok = s.small()
		case "data":
			bit = 1 << 9
			ev.Data, ok = s.last() // validated by decodeEvent
			ok = ok && ev.Data[0] != 'n'
		default:
			return ev, false
		}
		if !ok || seen&bit != 0 { // a repeated key: the decoder keeps the last
			return ev, false
		}
		seen |= bit
	}
	s.space()
	if s.i != len(b) || ev.SpecVersion != events.SpecVersion || ev.ID == "" || ev.Subject == "" ||
		events.KindOf(ev.Type) == "" || ev.Schema > events.SchemaVersion {
		return events.Event{}, false
	}
	return ev, true
}

// scanner reads the JSON that Event.Marshal writes. Its methods report
// false for anything outside that form.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) space() {
	for s.i < len(s.b) && isSpace(s.b[s.i]) {
		s.i++
	}
}

func isSpace(c byte) bool { return c == ' ' || c == '\n' || c == '\t' || c == '\r' }

func (s *scanner) byte(c byte) bool {
	s.space()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// raw reads a string of valid UTF-8 without escapes or control
// characters, and returns its bytes in place.
func (s *scanner) raw() ([]byte, bool) {
	if !s.byte('"') {
		return nil, false
	}
	start, ascii := s.i, true
	for ; s.i < len(s.b); s.i++ {
		switch c := s.b[s.i]; {
		case plain[c]:
		case c == '"':
			v := s.b[start:s.i]
			s.i++
			return v, ascii || utf8.Valid(v)
		case c < 0x20 || c == '\\':
			return nil, false
		default:
			ascii = false
		}
	}
	return nil, false
}

// plain holds the bytes a string may hold as they are, other than those of
// multi-byte UTF-8 sequences: printable ASCII but the quote and backslash.
var plain = func() (p [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		p[c] = c != '"' && c != '\\'
	}
	return p
}()

// str reads a string into dst.
func (s *scanner) str(dst *string) bool {
	v, ok := s.raw()
	*dst = string(v)
	return ok
}

// intern reads a string into dst, as the field of in.
func (s *scanner) intern(dst *string, in *interner, field int) bool {
	v, ok := s.raw()
	*dst = in.str(field, v)
	return ok
}

// small reads a non-negative integer of at most six digits.
func (s *scanner) small() (int, bool) {
	s.space()
	n, start := 0, s.i
	for ; s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' && s.i-start < 6; s.i++ {
		n = n*10 + int(s.b[s.i]-'0')
	}
	if s.i == start || (s.b[start] == '0' && s.i-start > 1) {
		return 0, false
	}
	return n, true
}

// last returns the rest of the document up to its closing brace, without
// surrounding space, and moves to that brace: the value of the object's
// last member, where Event.Marshal writes data, without scanning it. The
// caller validates it: when the member is not the last, the rest holds
// more than one value, which is not valid JSON.
func (s *scanner) last() ([]byte, bool) {
	s.space()
	start, end := s.i, len(s.b)
	for end > start && isSpace(s.b[end-1]) {
		end--
	}
	if end == start || s.b[end-1] != '}' {
		return nil, false
	}
	s.i = end - 1
	for end = s.i; end > start && isSpace(s.b[end-1]); end-- {
	}
	return s.b[start:end], end > start
}

// strict makes the v2 decoder refuse every document that encoding/json
// could read differently: v2 already matches names exactly and refuses
// duplicate names and invalid UTF-8, which encoding/json reads
// case-insensitively, last one winning, and with U+FFFD; names it does
// not know could be encoding/json's case-insensitive matches.
var strict = jsonv2.RejectUnknownMembers(true)

// decodeData decodes ev's data as events.DecodeData does. Data in the form
// Event.Marshal writes is decoded by the faster encoding/json/v2 decoder,
// under options that make it refuse whatever encoding/json would read
// differently; anything it refuses goes through events.DecodeData. It
// returns nil when the data does not decode.
func decodeData(ev *events.Event) any {
	if len(ev.Data) == 0 {
		return nil
	}
	v := events.DataOf(ev.Type)
	if v == nil {
		return nil
	}
	if jsonv2.Unmarshal(ev.Data, v, strict) == nil {
		return v
	}
	d, _ := events.DecodeData(ev)
	return d
}
