// Package imagedriver is berth's contract for container images: resolving a
// reference to the image that fits the host, pulling its layers into a layer
// store, and creating each container's scratch layer over its image's
// layers. The registry puller (package registry) implements [Puller] on
// go-containerregistry; the Windows layer store (package wclayer) and the
// portable folder store of the simulated host (package dirlayer) implement
// [LayerStore]. The conformance suite in imagedrivertest holds stores to the
// promises written here.
//
// # Layers and chains
//
// A layer is identified by its chain id, the OCI digest of its whole chain
// ([ChainID]): a layer's content only means something on top of its parents,
// so the same diff on two different bases is two layers, while a base shared
// by two images is one. For a base layer the chain id is its diff id. Parent
// lists are always ordered immediate parent first, base last, as the Windows
// layer APIs want them.
//
// The contract imports only the standard library and events: its types are
// berth's, never a registry library's, so that the image actor, the journal
// and the CLI can use them freely.
package imagedriver

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// Puller fetches images from registries. Implementations are safe for
// concurrent use. Pull policies (always, if_not_present, never, newer) are
// the caller's business: a Puller always asks the registry.
type Puller interface {
	// Resolve looks ref up and returns the descriptor of the image that best
	// runs on platform (see [MatchPlatform]), without fetching layers. auth
	// overrides the configured credentials for this call; nil uses them.
	// It fails with ErrInvalidReference, ErrUnauthorized, ErrNotFound,
	// ErrNoMatchingPlatform (a *PlatformError) or ErrUnavailable.
	Resolve(ctx context.Context, ref string, platform Platform, auth *Credentials) (Descriptor, error)
	// Pull resolves ref as Resolve does and imports every layer of the
	// chosen image that store lacks, base first, verifying each blob against
	// its digest and each uncompressed layer against its diff id. A layer
	// whose chain id the store has is not fetched. Layers download in
	// parallel, within a bound the implementation documents. On error the
	// layers already imported stay in the store (complete and verified);
	// nothing half-written is ever left usable.
	Pull(ctx context.Context, ref string, platform Platform, store LayerStore, opts PullOptions) (Image, error)
}

// Descriptor identifies the image a reference resolved to.
type Descriptor struct {
	// Ref is the reference as the registry library names it, fully
	// qualified ("index.docker.io/library/nanoserver:ltsc2022").
	Ref string `json:"ref"`
	// Digest is the digest of the chosen image manifest.
	Digest string `json:"digest"`
	// IndexDigest is the digest of the multi-platform index the image was
	// chosen from; "" when the reference names one image.
	IndexDigest string   `json:"index_digest,omitempty"`
	MediaType   string   `json:"media_type"`
	Size        int64    `json:"manifest_size"` // of the manifest, in bytes
	Platform    Platform `json:"platform"`
}

// Image is a pulled image: what the journal records and what a container is
// created from.
type Image struct {
	Descriptor
	Config ImageConfig `json:"config"`
	// Layers lists the image's layers, base first.
	Layers []LayerInfo `json:"layers"`
	// Size is the sum of the layers' compressed sizes: what a pull transfers
	// when the store holds none of them.
	Size int64 `json:"size"`
}

// TopLayer returns the chain id of the image's topmost layer, "" when the
// image has none. A container's scratch layer goes over it.
func (im Image) TopLayer() string {
	if len(im.Layers) == 0 {
		return ""
	}
	return im.Layers[len(im.Layers)-1].ChainID
}

// ImageConfig is the part of an image's configuration that running it needs.
type ImageConfig struct {
	Entrypoint   []string          `json:"entrypoint,omitempty"`
	Cmd          []string          `json:"cmd,omitempty"`
	Env          []string          `json:"env,omitempty"` // "KEY=value"
	WorkingDir   string            `json:"working_dir,omitempty"`
	User         string            `json:"user,omitempty"`
	Labels       map[string]string `json:"labels,omitempty"`
	OS           string            `json:"os"`
	Architecture string            `json:"architecture"`
	OSVersion    string            `json:"os_version,omitempty"`
}

// LayerInfo describes one layer of an image, as its manifest and config
// state it.
type LayerInfo struct {
	Digest    string `json:"digest"`   // of the compressed blob
	DiffID    string `json:"diff_id"`  // of the uncompressed tar
	ChainID   string `json:"chain_id"` // the layer's id in a LayerStore
	Size      int64  `json:"size"`     // of the compressed blob, in bytes
	MediaType string `json:"media_type"`
	// Foreign is true for a non-distributable layer, which registries do not
	// hold; it is fetched from URLs.
	Foreign bool     `json:"foreign,omitempty"`
	URLs    []string `json:"urls,omitempty"`
}

// PullOptions tune one pull.
type PullOptions struct {
	// Auth overrides the configured credentials for this pull; nil uses them.
	Auth *Credentials
	// Progress, when set, receives the pull's progress. Calls never overlap,
	// so Progress needs no locking of its own, but it runs on the pull's
	// goroutines and must return quickly.
	Progress func(ProgressUpdate)
	// ProgressInterval is the least time between two Progress calls; zero
	// reports every change. The last update, sent when the pull succeeds with
	// every layer done or present, is always delivered.
	ProgressInterval time.Duration
}

// ProgressUpdate is a snapshot of a pull: every layer of the image, base
// first, with the bytes transferred so far.
type ProgressUpdate struct {
	Ref    string          `json:"ref"` // as passed to Pull
	Layers []LayerProgress `json:"layers"`
}

// LayerProgress is one layer's part of a [ProgressUpdate].
type LayerProgress struct {
	Digest  string     `json:"digest"`
	Current int64      `json:"current"` // compressed bytes received
	Total   int64      `json:"total"`   // compressed size
	State   LayerState `json:"state"`
}

// LayerState is where a layer is in a pull.
type LayerState string

// Layer states. A layer goes from waiting through downloading and unpacking
// to done, or is reported as present when the store already held it.
const (
	LayerWaiting     LayerState = "waiting"
	LayerDownloading LayerState = "downloading"
	LayerUnpacking   LayerState = "unpacking" // every byte received; the import runs or waits for its parent
	LayerDone        LayerState = "done"
	LayerPresent     LayerState = "present" // in the store before the pull; not fetched
)

// Credentials authenticate to a registry for one call. They never print:
// every fmt verb, slog and encoding/json show the user name at most, so a
// value that reaches a log line or the journal by mistake leaks nothing.
type Credentials struct {
	Username string
	Password string
	// IdentityToken is an OAuth2 refresh token, as `docker login` stores it.
	IdentityToken string
	// RegistryToken is a bearer token sent as is.
	RegistryToken string
}

func (c Credentials) String() string {
	if c.Username == "" {
		return "credentials(redacted)"
	}
	return fmt.Sprintf("credentials(user %q, secrets redacted)", c.Username)
}

// Format prints [Credentials.String] for every verb, %#v and %+v included.
func (c Credentials) Format(f fmt.State, _ rune) { fmt.Fprint(f, c.String()) }

// LogValue keeps secrets out of slog records.
func (c Credentials) LogValue() slog.Value { return slog.StringValue(c.String()) }

// MarshalJSON writes the user name only.
func (c Credentials) MarshalJSON() ([]byte, error) {
	return fmt.Appendf(nil, `{"username":%q}`, c.Username), nil
}
