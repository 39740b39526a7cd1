package journal

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/fxamacker/cbor/v2"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Snapshot document schemas. Schema 1 is gzip-compressed JSON; schema 2,
// which berth writes, is zstd-compressed CBOR of the same document (the
// fields and names of its JSON form), about four times cheaper to decode.
// Both are read.
const (
	snapshotJSON = 1
	snapshotCBOR = 2
)

// errSnapshotSchema: a snapshot of a schema this agent does not know.
var errSnapshotSchema = errors.New("unknown snapshot schema")

var (
	// snapEnc writes times as RFC 3339 with nanoseconds, as the JSON form
	// does: the default (whole seconds) would lose their fractions.
	snapEnc = func() cbor.EncMode {
		m, err := cbor.EncOptions{Time: cbor.TimeRFC3339Nano}.EncMode()
		if err != nil {
			panic(err)
		}
		return m
	}()
	// snapDec bounds nesting, and arrays and maps to maxElements: a few
	// bytes of zstd can hold millions of tiny CBOR items, each of which
	// would become a whole Outcome or Container.
	snapDec = func() cbor.DecMode {
		m, err := cbor.DecOptions{
			MaxArrayElements: maxElements,
			MaxMapPairs:      maxElements,
			MaxNestedLevels:  32,
		}.DecMode()
		if err != nil {
			panic(err)
		}
		return m
	}()
	zstdEnc = sync.OnceValues(func() (*zstd.Encoder, error) {
		return zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithWindowSize(zstdWindow))
	})
)

// Limits of the snapshot decoder. A snapshot beyond them does not decode,
// so Boot folds the journal from the start instead: the document of 10,000
// containers and 100,000 outcomes is about 27 MB, with 100,000 elements in
// its largest array.
const (
	maxSnapshot = 256 << 20 // decompressed bytes
	maxElements = 1 << 20   // items of one array or map
	zstdWindow  = 4 << 20   // the compression window berth writes with
)

// encodeSnapshot encodes doc in the schema berth writes.
func encodeSnapshot(doc snapshotDoc) ([]byte, error) {
	doc.Schema = snapshotCBOR
	b, err := snapEnc.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("snapshot encoding: %w", err)
	}
	enc, err := zstdEnc()
	if err != nil {
		return nil, fmt.Errorf("snapshot compression: %w", err)
	}
	return enc.EncodeAll(b, nil), nil
}

// decodeSnapshot decodes a stored snapshot document of the given schema.
func decodeSnapshot(schema int, data []byte) (snapshotDoc, error) {
	var doc snapshotDoc
	switch schema {
	case snapshotJSON:
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return doc, fmt.Errorf("decompressing: %w", err)
		}
		if err := json.NewDecoder(zr).Decode(&doc); err != nil {
			return doc, fmt.Errorf("decoding: %w", err)
		}
		if _, err := io.Copy(io.Discard, zr); err != nil { // reaches the end, which checks the gzip checksum
			return doc, fmt.Errorf("decompressing: %w", err)
		}
	case snapshotCBOR:
		// A stream, not DecodeAll: memory grows with what the data
		// holds, not with the size its frame header claims.
		zr, err := zstd.NewReader(bytes.NewReader(data), zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderMaxWindow(2*zstdWindow), zstd.WithDecoderMaxMemory(maxSnapshot))
		if err != nil {
			return doc, fmt.Errorf("decompressing: %w", err)
		}
		b, err := io.ReadAll(io.LimitReader(zr, maxSnapshot+1))
		zr.Close()
		if err != nil {
			return doc, fmt.Errorf("decompressing: %w", err)
		}
		if len(b) > maxSnapshot {
			return doc, fmt.Errorf("decompressing: more than %d bytes", maxSnapshot)
		}
		if err := snapDec.Unmarshal(b, &doc); err != nil {
			return doc, fmt.Errorf("decoding: %w", err)
		}
	default:
		return doc, fmt.Errorf("%w %d", errSnapshotSchema, schema)
	}
	if doc.Schema != schema {
		return doc, fmt.Errorf("document of schema %d under a head of schema %d", doc.Schema, schema)
	}
	return doc, nil
}
