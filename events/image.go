package events

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Image event types (kind "img"). Their subject is the image's id, the
// digest of its manifest ("sha256:<hex>"), except image.pull_failed, which
// knows no image and whose subject is the reference's [RefToken].
const (
	ImagePulled     = "berth.image.pulled"      // ImagePulledData; the image's layers are complete in the store
	ImageTagged     = "berth.image.tagged"      // ImageRefData; the reference now names this image
	ImageRemoved    = "berth.image.removed"     // ImageRemovedData
	ImagePullFailed = "berth.image.pull_failed" // ImagePullFailedData; nothing half-written is usable
)

// Container scratch layer event types. Like the endpoint's, they happen
// inside a container's create and remove operations. scratch_creating is
// durable before the layer store creates the scratch layer: a
// scratch_creating without an outcome tells reconciliation that the
// container's scratch layer may exist. scratch_created carries where it is
// mounted; scratch_removed says it is gone.
const (
	ContainerScratchCreating     = "berth.container.scratch_creating"      // ScratchCreatingData
	ContainerScratchCreated      = "berth.container.scratch_created"       // ScratchCreatedData
	ContainerScratchCreateFailed = "berth.container.scratch_create_failed" // FailureData; nothing on the host
	ContainerScratchRemoved      = "berth.container.scratch_removed"       // no data; the scratch layer is gone
)

const scratchPrefix = "berth.container.scratch_"

// Pull policies (ImageSpec.PullPolicy, image.pull).
const (
	PullAlways       = "always"         // ask the registry every time
	PullIfNotPresent = "if_not_present" // pull only when the node has no image of the reference (the default)
	PullNever        = "never"          // never pull: the image must be on the node
	PullNewer        = "newer"          // pull when the registry's digest differs from the node's
)

// ImageConfig is the part of an image's configuration that running it
// needs, as the journal records it.
type ImageConfig struct {
	Entrypoint []string `json:"entrypoint,omitempty"`
	Cmd        []string `json:"cmd,omitempty"`
	Env        []string `json:"env,omitempty"` // "KEY=value"
	WorkingDir string   `json:"working_dir,omitempty"`
	User       string   `json:"user,omitempty"`
}

// ImageLayer is one layer of an image, base first in [Image.Layers].
type ImageLayer struct {
	Digest  string `json:"digest"`   // of the compressed blob
	DiffID  string `json:"diff_id"`  // of the uncompressed tar
	ChainID string `json:"chain_id"` // the layer's id in the layer store
	Size    int64  `json:"size"`     // compressed bytes
}

// Image is the fold's record of an image on the node.
type Image struct {
	ID          string       `json:"id"` // manifest digest
	IndexDigest string       `json:"index_digest,omitempty"`
	Platform    string       `json:"platform"` // "windows/amd64:10.0.20348.2227"
	Config      ImageConfig  `json:"config"`
	Layers      []ImageLayer `json:"layers"`
	Size        int64        `json:"size"` // sum of the layers' compressed sizes
	// Refs are the references that name the image, sorted; none for an
	// image whose every name was moved to another image or removed.
	Refs     []string  `json:"refs"`
	PulledAt time.Time `json:"pulled_at"`
	Seq      uint64    `json:"seq"`
}

// ImagePulledData is the payload of image.pulled: the image as it now is
// in the layer store, and the reference it was pulled (or loaded) as; ""
// for an image loaded from an archive that names it not.
type ImagePulledData struct {
	Ref         string       `json:"ref"`
	IndexDigest string       `json:"index_digest,omitempty"`
	Platform    string       `json:"platform"`
	Config      ImageConfig  `json:"config"`
	Layers      []ImageLayer `json:"layers"`
	Size        int64        `json:"size"`
}

// ImageRefData is the payload of image.tagged.
type ImageRefData struct {
	Ref string `json:"ref"`
}

// ImageRemovedData is the payload of image.removed. Refs are the
// references removed from the image. Deleted says that the image itself
// left the node (its record leaves the fold); Layers then lists the chain
// ids of the layers deleted from the store with it, and Reclaimed their
// bytes.
type ImageRemovedData struct {
	Refs      []string `json:"refs,omitempty"`
	Deleted   bool     `json:"deleted"`
	Layers    []string `json:"layers,omitempty"`
	Reclaimed int64    `json:"reclaimed,omitempty"`
}

// ImagePullFailedData is the payload of image.pull_failed.
type ImagePullFailedData struct {
	Ref   string `json:"ref"`
	Error string `json:"error"`
	Code  int    `json:"code,omitempty"` // reply code class of the failure
}

// ScratchCreatingData is the payload of container.scratch_creating: the
// image the container is created from and its layers' chain ids, topmost
// first, as the scratch layer is created over them.
type ScratchCreatingData struct {
	Image   string   `json:"image"`
	Parents []string `json:"parents"`
}

// ScratchCreatedData is the payload of container.scratch_created.
type ScratchCreatedData struct {
	Path       string `json:"path"`
	VolumePath string `json:"volume_path,omitempty"`
}

// Scratch is the fold's record of a container's scratch layer, from its
// scratch_creating until scratch_removed. Path is "" until it is created.
type Scratch struct {
	Image      string   `json:"image"`
	Parents    []string `json:"parents"`
	Path       string   `json:"path,omitempty"`
	VolumePath string   `json:"volume_path,omitempty"`
}

func (s *Scratch) clone() *Scratch {
	if s == nil {
		return nil
	}
	c := *s
	c.Parents = slices.Clone(s.Parents)
	return &c
}

func (im *Image) clone() *Image {
	c := *im
	c.Config.Entrypoint = slices.Clone(im.Config.Entrypoint)
	c.Config.Cmd = slices.Clone(im.Config.Cmd)
	c.Config.Env = slices.Clone(im.Config.Env)
	c.Layers = slices.Clone(im.Layers)
	c.Refs = slices.Clone(im.Refs)
	return &c
}

// ImageByRef returns the image that ref names, or nil. ref is compared as
// it is: callers normalize references before they are recorded and before
// they look them up.
func (s *State) ImageByRef(ref string) *Image {
	for _, im := range s.Images {
		if slices.Contains(im.Refs, ref) {
			return im
		}
	}
	return nil
}

// ImageUsers returns the ids of the containers that use image id, sorted:
// every container created from it that has not been removed or rolled
// back (a failed create holds nothing).
func (s *State) ImageUsers(id string) []string {
	var ids []string
	for _, c := range s.Containers {
		if c.Image == id && c.Phase != PhaseFailed {
			ids = append(ids, c.ID)
		}
	}
	slices.Sort(ids)
	return ids
}

func (s *State) applyImage(e *Event) error {
	if err := ValidateDigestID(e.Subject); err != nil && e.Type != ImagePullFailed {
		return fmt.Errorf("%w: event %s: %s subject: %v", ErrInvalid, e.ID, e.Short(), err)
	}
	im := s.Images[e.Subject]
	switch e.Type {
	case ImagePulled:
		var d ImagePulledData
		if err := e.Decode(&d); err != nil {
			return err
		}
		if d.Ref != "" {
			if err := checkRef(d.Ref); err != nil {
				return fmt.Errorf("%w: event %s: %v", ErrInvalid, e.ID, err)
			}
		}
		if im == nil {
			im = &Image{ID: e.Subject}
		}
		im.IndexDigest, im.Platform, im.Config, im.Layers, im.Size = d.IndexDigest, d.Platform, d.Config, d.Layers, d.Size
		im.PulledAt = e.Time
		if d.Ref != "" {
			s.name(im, d.Ref)
		}
	case ImageTagged:
		var d ImageRefData
		if err := e.Decode(&d); err != nil {
			return err
		}
		if err := checkRef(d.Ref); err != nil {
			return fmt.Errorf("%w: event %s: %v", ErrInvalid, e.ID, err)
		}
		if im == nil {
			return fmt.Errorf("%w: %s for image %s, which is not on the node", ErrWrongPhase, e.Short(), e.Subject)
		}
		s.name(im, d.Ref)
	case ImageRemoved:
		var d ImageRemovedData
		if err := e.Decode(&d); err != nil {
			return err
		}
		if im == nil {
			return fmt.Errorf("%w: %s for image %s, which is not on the node", ErrWrongPhase, e.Short(), e.Subject)
		}
		if d.Deleted {
			if users := s.ImageUsers(im.ID); len(users) > 0 {
				return fmt.Errorf("%w: %s for image %s, which containers %s use", ErrWrongPhase, e.Short(), e.Subject, strings.Join(users, ", "))
			}
			delete(s.Images, im.ID)
			return nil
		}
		im.Refs = slices.DeleteFunc(im.Refs, func(r string) bool { return slices.Contains(d.Refs, r) })
	case ImagePullFailed:
		var d ImagePullFailedData
		return e.Decode(&d) // a fact for operators; the fold keeps nothing of it
	default:
		return fmt.Errorf("%w: event %s: unknown image event type %q", ErrInvalid, e.ID, e.Type)
	}
	im.Seq = e.Seq
	if s.Images == nil {
		s.Images = map[string]*Image{}
	}
	s.Images[im.ID] = im
	return nil
}

// name makes ref name im, and no other image.
func (s *State) name(im *Image, ref string) {
	for _, other := range s.Images {
		if other != im {
			other.Refs = slices.DeleteFunc(other.Refs, func(r string) bool { return r == ref })
		}
	}
	if !slices.Contains(im.Refs, ref) {
		im.Refs = append(im.Refs, ref)
		slices.Sort(im.Refs)
	}
}

// applyScratch folds a container's scratch layer events into c, which
// applyContainer has checked may take them.
func applyScratch(e *Event, c *Container) error {
	switch e.Type {
	case ContainerScratchCreating:
		var d ScratchCreatingData
		if err := e.Decode(&d); err != nil {
			return err
		}
		if err := ValidateDigestID(d.Image); err != nil {
			return fmt.Errorf("%w: event %s: scratch_creating image: %v", ErrInvalid, e.ID, err)
		}
		if c.Scratch != nil && c.Scratch.Path != "" {
			return fmt.Errorf("%w: %s for container %s, which has scratch layer %s", ErrWrongPhase, e.Short(), c.ID, c.Scratch.Path)
		}
		c.Scratch = &Scratch{Image: d.Image, Parents: d.Parents}
		c.Image = d.Image
	case ContainerScratchCreated:
		var d ScratchCreatedData
		if err := e.Decode(&d); err != nil {
			return err
		}
		if c.Scratch == nil || c.Scratch.Path != "" || d.Path == "" {
			return fmt.Errorf("%w: %s for container %s, which is not creating a scratch layer", ErrWrongPhase, e.Short(), c.ID)
		}
		c.Scratch.Path, c.Scratch.VolumePath = d.Path, d.VolumePath
	case ContainerScratchCreateFailed:
		var d FailureData
		if err := e.Decode(&d); err != nil {
			return err
		}
		if c.Scratch == nil || c.Scratch.Path != "" {
			return fmt.Errorf("%w: %s for container %s, which is not creating a scratch layer", ErrWrongPhase, e.Short(), c.ID)
		}
		c.Scratch = nil
	case ContainerScratchRemoved:
		if c.Scratch == nil {
			return fmt.Errorf("%w: %s for container %s, which has no scratch layer", ErrWrongPhase, e.Short(), c.ID)
		}
		c.Scratch = nil
	}
	return nil
}

// ValidateDigestID checks that id is "sha256:" and 64 lowercase hex
// digits: an image id, a layer's chain id.
func ValidateDigestID(id string) error {
	h, ok := strings.CutPrefix(id, "sha256:")
	if !ok || len(h) != 64 || strings.Trim(h, "0123456789abcdef") != "" {
		return fmt.Errorf("%w: %q is not sha256:<64 lowercase hex>", ErrInvalid, id)
	}
	return nil
}

// checkRef refuses a reference that cannot be one: empty, too long, or
// with white space or control characters. Parsing it is the puller's job.
func checkRef(ref string) error {
	if ref == "" || len(ref) > 1024 || strings.IndexFunc(ref, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0 {
		return fmt.Errorf("%w: %q is not an image reference", ErrInvalid, ref)
	}
	return nil
}

// RefToken turns an image reference into one NATS subject token, for the
// subjects of its pull's progress (<prefix>.progress.<node>.img.<token>) and
// of image.pull_failed. A token may not hold '.', '*', '>' or white space,
// and references hold dots ("mcr.microsoft.com/windows/nanoserver:ltsc2022"),
// so RefToken escapes '%', '.', '*', '>' and every byte at or below ' ' or
// above '~' as %XX (upper-case hex) and keeps every other byte:
// "mcr%2Emicrosoft%2Ecom/windows/nanoserver:ltsc2022". The mapping is
// one-to-one; [RefFromToken] reverses it. Clients subscribe with the token
// of the reference exactly as they send it in the command.
func RefToken(ref string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(ref); i++ {
		c := ref[i]
		if c <= ' ' || c > '~' || strings.IndexByte("%.*>", c) >= 0 {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// RefFromToken reverses [RefToken]; it fails with ErrInvalid on a token
// RefToken cannot have made.
func RefFromToken(tok string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(tok) {
			return "", fmt.Errorf("%w: token %q: truncated escape at %d", ErrInvalid, tok, i)
		}
		var v byte
		for _, h := range []byte{tok[i+1], tok[i+2]} {
			switch {
			case h >= '0' && h <= '9':
				v = v<<4 | (h - '0')
			case h >= 'A' && h <= 'F':
				v = v<<4 | (h - 'A' + 10)
			default:
				return "", fmt.Errorf("%w: token %q: bad escape at %d", ErrInvalid, tok, i)
			}
		}
		b.WriteByte(v)
		i += 2
	}
	if RefToken(b.String()) != tok {
		return "", fmt.Errorf("%w: token %q is not in RefToken's form", ErrInvalid, tok)
	}
	return b.String(), nil
}
