package imagedriver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/berthhq/berth/events"
)

// LayerStore holds unpacked image layers and the containers' scratch layers.
// Implementations are safe for concurrent use. Every id argument is a chain
// id, "sha256:<64 lowercase hex>"; anything else fails with ErrInvalid.
type LayerStore interface {
	// Has reports whether the layer is in the store and complete.
	Has(ctx context.Context, id string) (bool, error)
	// Import unpacks the uncompressed layer tar r on top of parents (chain
	// ids, immediate parent first; none for a base layer) and returns the
	// layer, whose id is ChainID(parents[0], diffID).
	//
	// Import unpacks where Get cannot see the layer, and publishes it, with a
	// completion marker written last, only once r has been read to its end,
	// its sha256 equals diffID, and every entry has landed. On any error nothing is
	// published: Has stays false, Get fails and the layer can be imported
	// again. Errors: ErrDigestMismatch when r's content does not hash to
	// diffID; ErrUnsafeEntry, naming the entry, for one that would land
	// outside the layer; ErrInvalidImage when r is not a tar archive or holds
	// an entry a layer cannot; ErrNotFound when a parent is not complete in
	// the store; ErrInvalid when parents is not a chain (parents[0] does not
	// record parents[1:] as its own); a failing r's error, wrapped; ctx.Err()
	// when ctx ends first.
	//
	// Import of a layer that is complete returns it without reading r.
	// Concurrent imports of one layer result in one: the others wait for it
	// and return its result without reading their r, or import themselves
	// when it failed.
	Import(ctx context.Context, diffID string, parents []string, r io.Reader) (Layer, error)
	// Get returns a complete layer, or ErrNotFound.
	Get(ctx context.Context, id string) (Layer, error)
	// List returns every layer in the store, complete or not: an incomplete
	// one (left by a crash during an import or a removal) has Complete false
	// and is never returned by Get; Remove deletes it. Imports running in
	// this store are not listed.
	List(ctx context.Context) ([]Layer, error)
	// Remove deletes a layer, complete or not, with every incomplete
	// leftover of the same id. It fails with ErrInUse when the layer is a
	// parent of another complete layer or of a scratch layer, or is being
	// imported, and with ErrNotFound when the store holds nothing of it.
	Remove(ctx context.Context, id string) error

	// CreateScratch creates the writable layer of container containerID over
	// parents (the image's layers, topmost first, base last), recording the
	// chain, and mounts it: the result's VolumePath is set, unless
	// opts.Unmounted says otherwise. Every parent must
	// be complete in this store (else ErrNotFound) and parents must be the
	// whole chain of parents[0] (else ErrInvalid). It fails with ErrExists
	// when the container has a scratch layer, and with ErrInvalid when
	// containerID is not a valid container id. On error nothing is left.
	CreateScratch(ctx context.Context, containerID string, parents []Layer, opts ScratchOptions) (Scratch, error)
	// RemoveScratch unmounts and deletes the container's scratch layer,
	// complete or not, or fails with ErrNotFound. Call it once no compute
	// system uses the scratch layer any more.
	RemoveScratch(ctx context.Context, containerID string) error
	// ListScratch returns every scratch layer, complete or not: one whose
	// creation was cut short has Complete false.
	ListScratch(ctx context.Context) ([]Scratch, error)
}

// AheadImporter is implemented by layer stores that unpack a layer without
// reading its parents, such as the folder store: a pull can then unpack a
// layer while its parent is still importing, rather than hold it back.
type AheadImporter interface {
	// ImportAhead is Import, except that it unpacks r at once, before the
	// parents need be complete, and waits for ready to close before it
	// checks them and publishes the layer. When ctx ends first, or a
	// parent is not complete once ready has closed, nothing is published
	// (Import's errors). ready must close, or ctx end, for it to return.
	ImportAhead(ctx context.Context, diffID string, parents []string, r io.Reader, ready <-chan struct{}) (Layer, error)
}

// Layer is one unpacked layer in a store.
type Layer struct {
	ID      string   `json:"id"`      // chain id
	DiffID  string   `json:"diff_id"` // "" when the store cannot tell (an incomplete layer)
	Parents []string `json:"parents,omitempty"`
	// Path is where the layer lives on the host (a folder).
	Path string `json:"path"`
	// Size is the bytes of file content the layer holds.
	Size int64 `json:"size"`
	// GUID names the layer to the compute service: the id of the layer in
	// the compute system's document (hcsdriver.Layer.ID). The Windows store
	// gives the GUID the layer APIs derive from the layer folder's name;
	// "" when the store cannot tell (an incomplete layer).
	GUID     string `json:"guid,omitempty"`
	Complete bool   `json:"complete"`
}

// ScratchOptions tune CreateScratch.
type ScratchOptions struct {
	// Unmounted creates the scratch layer without mounting it on the host:
	// VolumePath stays empty. A Hyper-V isolated container's utility VM
	// attaches its scratch itself, and a scratch mounted on the host as well
	// would keep the VM from opening it.
	Unmounted bool
}

// Scratch is a container's writable layer.
type Scratch struct {
	ContainerID string `json:"container_id"`
	Path        string `json:"path"`
	// Parents are the chain ids of its read-only layers, immediate parent
	// first; nil when the store cannot tell (an incomplete scratch).
	Parents []string `json:"parents,omitempty"`
	// VolumePath is where the mounted scratch layer is reached: on Windows
	// the volume (\\?\Volume{GUID}\) a process-isolated compute system
	// takes as its root (hcsdriver.Config.VolumePath); in a folder store the
	// scratch folder itself. "" when the scratch is not mounted or the store
	// cannot tell (an incomplete scratch).
	VolumePath string `json:"volume_path,omitempty"`
	Complete   bool   `json:"complete"`
}

// ChainID returns the chain id of the layer with diff id diffID over the
// layer whose chain id is parent: diffID itself for a base layer (parent ""),
// otherwise the sha256 of "<parent> <diffID>" (the OCI image spec's rule).
func ChainID(parent, diffID string) string {
	if parent == "" {
		return diffID
	}
	sum := sha256.Sum256([]byte(parent + " " + diffID))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// ChainIDs returns the chain id of every layer of an image whose diff ids
// are diffIDs, base first.
func ChainIDs(diffIDs []string) []string {
	ids := make([]string, len(diffIDs))
	parent := ""
	for i, d := range diffIDs {
		parent = ChainID(parent, d)
		ids[i] = parent
	}
	return ids
}

// ImportID checks the arguments of [LayerStore.Import] (a diff id and
// parent chain ids, each "sha256:<64 lowercase hex>") and returns the id of
// the layer they make: ChainID(parents[0], diffID), or diffID for a base
// layer. It fails with ErrInvalid naming the digest at fault.
func ImportID(diffID string, parents []string) (string, error) {
	if err := ValidateDigest(diffID); err != nil {
		return "", err
	}
	for _, p := range parents {
		if err := ValidateDigest(p); err != nil {
			return "", fmt.Errorf("parent: %w", err)
		}
	}
	if len(parents) == 0 {
		return diffID, nil
	}
	return ChainID(parents[0], diffID), nil
}

// ValidateDigest checks that d is "sha256:" followed by 64 lowercase hex
// digits, the only digests berth stores, and fails with ErrInvalid otherwise.
func ValidateDigest(d string) error {
	h, ok := strings.CutPrefix(d, "sha256:")
	if !ok || len(h) != 64 || strings.Trim(h, "0123456789abcdef") != "" {
		return fmt.Errorf("digest %q: %w: want sha256:<64 lowercase hex>", d, ErrInvalid)
	}
	return nil
}

// CheckChain checks that parents (chain ids, immediate parent first) are
// complete layers and form the whole chain of parents[0], as Import and
// CreateScratch require; parentsOf returns a layer's recorded parents, and
// ok false when the layer is not complete. It fails with ErrNotFound when
// parents[0] is not complete, and with ErrInvalid when a layer further down
// is missing or a layer records other parents.
func CheckChain(parents []string, parentsOf func(id string) (recorded []string, ok bool)) error {
	for i, p := range parents {
		recorded, ok := parentsOf(p)
		if !ok {
			if i == 0 {
				return fmt.Errorf("parent layer %s: %w", p, ErrNotFound)
			}
			return fmt.Errorf("parent layer %s: %w: not in the store", p, ErrInvalid)
		}
		if !slices.Equal(recorded, parents[i+1:]) {
			return fmt.Errorf("parents: %w: layer %s sits on %v, not on %v", ErrInvalid, p, recorded, parents[i+1:])
		}
	}
	return nil
}

// ScratchChain checks the arguments of [LayerStore.CreateScratch] and
// returns the parents' chain ids, topmost first. It fails with ErrInvalid
// when containerID is not a valid container id, parents is empty or a
// parent's id is not a chain id.
func ScratchChain(containerID string, parents []Layer) ([]string, error) {
	if err := events.ValidateContainerID(containerID); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if len(parents) == 0 {
		return nil, fmt.Errorf("scratch layer of %s: %w: no parent layers", containerID, ErrInvalid)
	}
	ids := make([]string, len(parents))
	for i, p := range parents {
		if err := ValidateDigest(p.ID); err != nil {
			return nil, fmt.Errorf("scratch layer of %s: parent: %w", containerID, err)
		}
		ids[i] = p.ID
	}
	return ids, nil
}

// DigestHex checks that d is a digest berth stores (see ValidateDigest) and
// returns its hex part.
func DigestHex(d string) (string, error) {
	if err := ValidateDigest(d); err != nil {
		return "", err
	}
	return strings.TrimPrefix(d, "sha256:"), nil
}
