package events

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
)

// Image verbs. They name no container.
const (
	VerbImagePull   = "image.pull"
	VerbImageTag    = "image.tag"
	VerbImageRemove = "image.remove"
	VerbImagePrune  = "image.prune"
	VerbImageLoad   = "image.load"
)

var imageVerbs = []string{VerbImagePull, VerbImageTag, VerbImageRemove, VerbImagePrune, VerbImageLoad}

// IsImageVerb reports whether verb is one of the image verbs.
func IsImageVerb(verb string) bool { return slices.Contains(imageVerbs, verb) }

// ImageCommand carries what an image verb needs.
type ImageCommand struct {
	// Ref names the image: what image.pull pulls, what image.tag tags and
	// what image.remove removes (a reference or an image id).
	Ref string `json:"ref,omitempty"`
	// Target is the new reference image.tag gives the image.
	Target string `json:"target,omitempty"`
	// PullPolicy of image.pull: always (the default) or newer; if_not_present
	// and never are accepted for symmetry with the spec.
	PullPolicy string `json:"pull_policy,omitempty"`
	// All widens image.prune to images that have names, when no container
	// uses them; without it prune removes only unnamed images and layers no
	// image uses.
	All bool `json:"all,omitempty"`
	// Source is the path, on the node, of a docker save tarball or an OCI
	// image layout folder for image.load.
	Source string `json:"source,omitempty"`
}

// RegistryAuth is a registry credential carried by one command (image.pull,
// create, run). The agent uses it for that command's pull only: it is never
// logged, never part of an event, a reply or a snapshot. String, Format and
// LogValue print the user name at most; JSON encoding keeps every field,
// because the command travels as JSON.
type RegistryAuth struct {
	Username      string `json:"username,omitempty"`
	Password      string `json:"password,omitempty"`
	IdentityToken string `json:"identity_token,omitempty"`
	RegistryToken string `json:"registry_token,omitempty"`
}

func (a RegistryAuth) String() string {
	if a.Username == "" {
		return "registry auth(redacted)"
	}
	return fmt.Sprintf("registry auth(user %q, secrets redacted)", a.Username)
}

// Format prints [RegistryAuth.String] for every verb.
func (a RegistryAuth) Format(f fmt.State, _ rune) { fmt.Fprint(f, a.String()) }

// LogValue keeps secrets out of slog records.
func (a RegistryAuth) LogValue() slog.Value { return slog.StringValue(a.String()) }

// validateImage checks an image verb's command: no container, no spec, an
// ImageCommand with what the verb needs.
func (c *Command) validateImage() error {
	bad := func(field, format string, a ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrInvalid, field, fmt.Sprintf(format, a...))
	}
	switch {
	case c.Container != "":
		return bad("container", "not accepted by %s", c.Verb)
	case c.Spec != nil:
		return bad("spec", "not accepted by %s", c.Verb)
	case c.Network != nil:
		return bad("network", "only %s takes a network", VerbNetworkConfigure)
	case c.Timeout != nil:
		return bad("timeout", "only stop takes a timeout")
	case c.Exec != nil:
		return bad("exec", "only %s takes an exec spec", VerbExec)
	case c.Force && c.Verb != VerbImageRemove:
		return bad("force", "only remove and image.remove take force")
	case c.Auth != nil && c.Verb != VerbImagePull:
		return bad("auth", "only image.pull, create and run take registry credentials")
	case c.Image == nil:
		return bad("image", "required by %s", c.Verb)
	}
	im := c.Image
	need := map[string][]string{
		VerbImagePull: {"ref"}, VerbImageTag: {"ref", "target"}, VerbImageRemove: {"ref"},
		VerbImagePrune: nil, VerbImageLoad: {"source"},
	}[c.Verb]
	for _, f := range []struct{ name, v string }{{"ref", im.Ref}, {"target", im.Target}, {"source", im.Source}} {
		name, v := f.name, f.v
		required := slices.Contains(need, name)
		switch {
		case required && strings.TrimSpace(v) == "":
			return bad("image."+name, "required by %s", c.Verb)
		case !required && v != "":
			return bad("image."+name, "not accepted by %s", c.Verb)
		case name != "source" && v != "" && checkRef(v) != nil:
			return bad("image."+name, "%q is not an image reference", v)
		case name == "source" && (len(v) > 4096 || strings.ContainsRune(v, 0)):
			return bad("image.source", "not a path")
		}
	}
	switch {
	case im.PullPolicy != "" && c.Verb != VerbImagePull:
		return bad("image.pull_policy", "only %s takes a pull policy", VerbImagePull)
	case im.All && c.Verb != VerbImagePrune:
		return bad("image.all", "only %s takes all", VerbImagePrune)
	}
	switch im.PullPolicy {
	case "", PullAlways, PullIfNotPresent, PullNever, PullNewer:
	default:
		return bad("image.pull_policy", "%q is not one of always, if_not_present, never, newer", im.PullPolicy)
	}
	return nil
}

// ImageResult answers image.pull: the image as the node now holds it, and
// whether layers were fetched.
type ImageResult struct {
	Image  Image `json:"image"`
	Pulled bool  `json:"pulled"`
}

// ImageRemoveResult answers image.remove and image.prune. Untagged are the
// references taken away, Deleted the images that left the node, Layers the
// layers deleted from the store and Reclaimed their bytes. Kept lists the
// containers that still use an image whose names a forced remove took: the
// containers are left as they are (running ones keep running) and the
// image's layers stay until the last of them is removed; image.prune
// reclaims them then.
type ImageRemoveResult struct {
	Untagged  []string `json:"untagged,omitempty"`
	Deleted   []string `json:"deleted,omitempty"`
	Layers    int      `json:"layers"`
	Reclaimed int64    `json:"reclaimed"`
	Kept      []string `json:"kept,omitempty"`
}

// ImageLoadResult answers image.load: the images loaded, with the
// references they were loaded as.
type ImageLoadResult struct {
	Images []Image `json:"images"`
}

// ImageSummary is one row of the images query: an image and the
// containers that use it.
type ImageSummary struct {
	Image
	Containers []string `json:"containers,omitempty"`
}

// ImageProgress is one progress message of a pull, published (not
// journaled) on <prefix>.progress.<node>.img.<RefToken(ref)>, where ref is
// the pull's normalized reference. It lists every layer of the image, base
// first, with the compressed bytes received so far.
type ImageProgress struct {
	Ref    string          `json:"ref"`
	Layers []LayerProgress `json:"layers"`
}

// LayerProgress is one layer's part of an [ImageProgress]. State is
// waiting, downloading, unpacking, done, or present (the node had it).
type LayerProgress struct {
	Digest  string `json:"digest"`
	Current int64  `json:"current"`
	Total   int64  `json:"total"`
	State   string `json:"state"`
}

// ImageList returns the images on the node with the containers that use
// each, sorted by their first reference; unnamed images come last, by id.
func (s *State) ImageList() []ImageSummary {
	out := make([]ImageSummary, 0, len(s.Images))
	for id, im := range s.Images {
		out = append(out, ImageSummary{Image: *im.clone(), Containers: s.ImageUsers(id)})
	}
	slices.SortFunc(out, func(a, b ImageSummary) int {
		switch {
		case len(a.Refs) > 0 && len(b.Refs) > 0:
			return strings.Compare(a.Refs[0], b.Refs[0])
		case (len(a.Refs) > 0) != (len(b.Refs) > 0):
			return len(b.Refs) - len(a.Refs)
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}
