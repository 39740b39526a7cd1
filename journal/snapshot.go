package journal

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/berthhq/berth/events"
)

// SnapshotSchema is the version of the snapshot document berth writes.
const SnapshotSchema = snapshotCBOR

// A snapshot is the compressed document {seq, schema, state} (see
// snapshotCBOR for its encodings), cut into chunks that each fit in one
// message. The chunks go to one of two slots ("a.0", "a.1", ... or "b.0",
// ...), the one the current head does not name; the head key, written
// last, names the slot, the schema, the chunk count and the SHA-256 of the
// compressed bytes. A torn write leaves the old head in
// place, and a head whose chunks do not match its hash is ignored.
const headKey = "head"

type snapshotDoc struct {
	Seq    uint64        `json:"seq"`
	Schema int           `json:"schema"`
	State  *events.State `json:"state"`
}

type snapshotHead struct {
	Seq    uint64 `json:"seq"`
	Schema int    `json:"schema"`
	Slot   string `json:"slot"`
	Chunks int    `json:"chunks"`
	Size   int    `json:"size"`
	SHA256 string `json:"sha256"`
}

// SaveSnapshot stores st as the node's snapshot, replacing the previous
// one, so that Boot folds only the events after st.Seq. A state not newer
// than the stored snapshot is not written. st must not be mutated during the
// call. A concurrent save by another writer fails with events.ErrConflict.
func (j *Journal) SaveSnapshot(ctx context.Context, st *events.State) error {
	j.snapMu.Lock()
	defer j.snapMu.Unlock()
	if err := j.Err(); err != nil {
		return err
	}
	if st.Node != j.cfg.Subjects.Node {
		return fmt.Errorf("%w: snapshot of node %q in the journal of %q", events.ErrInvalid, st.Node, j.cfg.Subjects.Node)
	}
	head, rev, err := j.snapshotHead(ctx)
	if err != nil {
		return err
	}
	if head != nil && head.Seq >= st.Seq && head.Seq <= j.last.Load() {
		return nil // the stored snapshot is as new (a head beyond the stream is stale and replaced)
	}
	data, err := encodeSnapshot(snapshotDoc{Seq: st.Seq, State: st})
	if err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	next := snapshotHead{Seq: st.Seq, Schema: SnapshotSchema, Slot: "a", Size: len(data), SHA256: hex.EncodeToString(sum[:])}
	if head != nil && head.Slot == "a" {
		next.Slot = "b"
	}
	for off := 0; off < len(data); off += j.chunkSize {
		chunk := data[off:min(off+j.chunkSize, len(data))]
		if _, err := j.snaps.Put(ctx, chunkKey(next.Slot, next.Chunks), chunk); err != nil {
			return fmt.Errorf("snapshot chunk %d: %w", next.Chunks, err)
		}
		next.Chunks++
	}
	hb, err := json.Marshal(next)
	if err != nil {
		return fmt.Errorf("snapshot head: %w", err)
	}
	if head == nil {
		_, err = j.snaps.Create(ctx, headKey, hb)
	} else {
		_, err = j.snaps.Update(ctx, headKey, hb, rev)
	}
	if errors.Is(err, jetstream.ErrKeyExists) {
		return fmt.Errorf("%w: snapshot head changed during the save", events.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("snapshot head: %w", err)
	}
	j.snapSeq.Store(st.Seq)
	j.log.Debug().Uint64("seq", st.Seq).Int("bytes", len(data)).Int("chunks", next.Chunks).Msg("snapshot saved")
	return nil
}

func chunkKey(slot string, i int) string { return slot + "." + strconv.Itoa(i) }

// snapshotHead returns the stored head and its revision, or nil when there
// is none.
func (j *Journal) snapshotHead(ctx context.Context) (*snapshotHead, uint64, error) {
	e, err := j.snaps.Get(ctx, headKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("snapshot head: %w", err)
	}
	var h snapshotHead
	if err := json.Unmarshal(e.Value(), &h); err != nil {
		j.log.Warn().Err(err).Msg("snapshot head does not decode; ignoring the snapshot")
		return &h, e.Revision(), nil
	}
	return &h, e.Revision(), nil
}

// loadSnapshot returns the stored snapshot if there is a usable one at or
// before sequence upTo, and nil when there is none. A snapshot that is
// torn, of a newer schema or of another node is logged and ignored: the
// caller folds the journal from the start instead.
func (j *Journal) loadSnapshot(ctx context.Context, upTo uint64, bs *BootStats) (*events.State, error) {
	start := time.Now()
	h, _, err := j.snapshotHead(ctx)
	if err != nil || h == nil {
		return nil, err
	}
	if h.Seq > upTo || h.Chunks == 0 {
		return nil, nil
	}
	ignore := func(why string, err error) (*events.State, error) {
		j.log.Warn().Err(err).Uint64("seq", h.Seq).Msg("snapshot ignored: " + why)
		return nil, nil
	}
	if h.Schema > SnapshotSchema {
		return ignore("schema "+strconv.Itoa(h.Schema)+" is newer than this agent's", nil)
	}
	data := make([]byte, 0, h.Size)
	for i := range h.Chunks {
		e, err := j.snaps.Get(ctx, chunkKey(h.Slot, i))
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return ignore("chunk missing", err)
		}
		if err != nil {
			return nil, fmt.Errorf("snapshot chunk %d: %w", i, err)
		}
		data = append(data, e.Value()...)
	}
	bs.SnapshotBytes, bs.SnapshotGet = len(data), time.Since(start)
	start = time.Now()
	defer func() { bs.SnapshotDecode = time.Since(start) }()
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != h.SHA256 {
		return ignore("chunks do not match the head's hash", nil)
	}
	doc, err := decodeSnapshot(h.Schema, data)
	if err != nil {
		return ignore("does not decode", err)
	}
	st := doc.State
	switch {
	case st == nil:
		return ignore("no state", nil)
	case st.Node != j.cfg.Subjects.Node:
		return ignore("state of node "+st.Node, nil)
	case st.Seq != doc.Seq || doc.Seq != h.Seq:
		return ignore("sequences disagree", nil)
	}
	if st.Containers == nil {
		st.Containers = map[string]*events.Container{}
	}
	st.Window = j.cfg.Window
	bs.SnapshotSeq = h.Seq
	if cur := j.snapSeq.Load(); h.Seq > cur {
		j.snapSeq.CompareAndSwap(cur, h.Seq)
	}
	return st, nil
}
