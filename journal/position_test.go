package journal

import (
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// samePosition checks that ackPosition reads reply as Metadata does, when
// it reads it at all.
func samePosition(t *testing.T, reply string) (ok bool) {
	t.Helper()
	seq, pending, ok := ackPosition(reply)
	if !ok {
		return false
	}
	md, err := (&nats.Msg{Reply: reply, Sub: &nats.Subscription{}}).Metadata()
	if err != nil {
		t.Fatalf("ackPosition(%q) = %d, %d; Metadata fails: %v", reply, seq, pending, err)
	}
	if seq != md.Sequence.Stream || pending != md.NumPending {
		t.Fatalf("ackPosition(%q) = %d, %d; Metadata says %d, %d", reply, seq, pending, md.Sequence.Stream, md.NumPending)
	}
	return true
}

var ackSubjects = []struct {
	reply string
	ok    bool
}{
	{"$JS.ACK.EVT.c1.1.42.7.1700000000000000000.3", true},
	{"$JS.ACK.dom.HASH.EVT.c1.1.42.7.1700000000000000000.3.xyz", true},
	{"$JS.ACK._.HASH.EVT.c1.1.42.7.1700000000000000000.0", true},
	{"$JS.ACK.dom.HASH.EVT.c1.1.42.7.1700000000000000000.3.xyz.more", true},
	{"$JS.ACK.EVT.c1.1.18446744073709551615.7.1.0", false}, // 20 digits: left to Metadata
	{"$JS.ACK.EVT.c1.1.x.7.1.0", false},
	{"$JS.ACK.EVT.c1.1.42.7.1.", false},
	{"$JS.ACK.EVT.c1.1.42.7.1", false},
	{"$JS.ACK.dom.EVT.c1.1.42.7.1.3", false},
	{"$JS.NAK.EVT.c1.1.42.7.1.3", false},
	{"", false},
}

func TestAckPosition(t *testing.T) {
	for _, c := range ackSubjects {
		if ok := samePosition(t, c.reply); ok != c.ok {
			t.Errorf("ackPosition(%q) read it: %v, want %v", c.reply, ok, c.ok)
		}
	}
}

// TestPosition checks position against Metadata on messages a consumer
// of a real server delivered.
func TestPosition(t *testing.T) {
	s := startServer(t, "")
	j := open(t, s, Config{})
	boot(t, j)
	appendAll(t, j, created("c1"), ran("c1"))
	oc, err := j.evt.OrderedConsumer(testCtx(t), jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for range 9 {
		m, err := oc.Next()
		if err != nil {
			t.Fatal(err)
		}
		if !samePosition(t, m.Reply()) {
			t.Fatalf("ackPosition does not read %q", m.Reply())
		}
	}
}

func FuzzAckPosition(f *testing.F) {
	for _, c := range ackSubjects {
		f.Add(c.reply)
	}
	f.Fuzz(func(t *testing.T, reply string) { samePosition(t, reply) })
}
