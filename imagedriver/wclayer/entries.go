package wclayer

import (
	"archive/tar"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"

	"github.com/berthhq/berth/imagedriver"
)

const (
	whiteoutPrefix = ".wh."
	whiteoutMeta   = ".wh..wh." // union file system metadata, such as the opaque marker
	// Limits on entry names, far above what Windows layers hold, that keep a
	// hostile layer from building trees too deep to handle.
	maxNameLen = 4096
	maxDepth   = 256
)

// rules checks the entries of one layer tar, in order, before the layer
// writer sees them. Names are read as Windows reads them: a backslash
// separates too, and case does not matter.
type rules struct {
	base bool // the layer has no parents
	// links holds the symbolic links met so far, by folded clean name.
	links map[string]link
	// streamOwner is the name of the last entry that alternate data streams
	// may follow ("name:stream" entries), "" when none may.
	streamOwner string
}

// link is a symbolic link of the layer.
type link struct {
	name   string // the entry's name
	target string // slash-separated
}

func newRules(base bool) *rules { return &rules{base: base, links: map[string]link{}} }

// fold returns the form of a clean name under which Windows finds it.
func fold(name string) string { return strings.ToLower(name) }

// entry checks the next entry of the layer. It refuses with
// imagedriver.ErrUnsafeEntry, naming the entry, a name that is absolute (a
// leading separator, a drive letter) or holds "..", a name whose path passes
// through a symbolic link of the layer, a hard link whose target is such a
// name or a symbolic link, and a symbolic link whose target, resolved
// through the layer's links, is absolute or leaves the layer. It refuses with
// imagedriver.ErrInvalidImage what a Windows layer cannot hold: special
// files, sparse files, an alternate data stream ("file:stream") that does
// not follow its file, a whiteout in a base layer or of nothing, and the
// metadata of union file systems (".wh..wh..opq"), which the layer writer
// would not honour.
func (r *rules) entry(hdr *tar.Header) error {
	owner := r.streamOwner
	r.streamOwner = ""
	name, ok := imagedriver.CleanEntryName(hdr.Name)
	if !ok {
		return imagedriver.UnsafeEntryError(hdr.Name, "absolute or climbing out of the layer")
	}
	if len(name) > maxNameLen || strings.Count(name, "/") >= maxDepth {
		return imagedriver.InvalidEntryError(hdr.Name[:min(len(hdr.Name), 64)]+"...", "name too long or too deep")
	}
	if via := r.viaLink(name); via != "" {
		return imagedriver.UnsafeEntryError(hdr.Name, "its path passes through the symbolic link "+via)
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return imagedriver.InvalidEntryError(hdr.Name, "sparse files have no place in a layer")
		}
	}
	dir, base := path.Split(name)
	if strings.Contains(dir, ":") {
		return imagedriver.InvalidEntryError(hdr.Name, "a folder name holds a colon")
	}
	if strings.Contains(base, ":") {
		// An alternate data stream of the entry before it.
		if hdr.Typeflag != tar.TypeReg || owner == "" || !strings.HasPrefix(hdr.Name, owner+":") {
			return imagedriver.InvalidEntryError(hdr.Name, "an alternate data stream that does not follow its file")
		}
		r.streamOwner = owner
		return nil
	}
	if strings.HasPrefix(base, whiteoutPrefix) {
		return r.whiteout(hdr.Name, base)
	}
	switch hdr.Typeflag {
	case tar.TypeDir, tar.TypeReg:
	case tar.TypeSymlink:
		target := strings.ReplaceAll(hdr.Linkname, `\`, "/")
		if target == "" {
			return imagedriver.InvalidEntryError(hdr.Name, "symbolic link without a target")
		}
		r.links[fold(name)] = link{hdr.Name, target}
		if err := r.checkLink(fold(name)); err != nil {
			return err
		}
	case tar.TypeLink:
		target, ok := imagedriver.CleanEntryName(hdr.Linkname)
		if !ok || target == "" {
			return imagedriver.UnsafeEntryError(hdr.Name, "hard link to "+hdr.Linkname+", outside the layer")
		}
		if via := r.viaLink(target); via != "" {
			return imagedriver.UnsafeEntryError(hdr.Name, "hard link through the symbolic link "+via)
		}
		if l, ok := r.links[fold(target)]; ok {
			return imagedriver.UnsafeEntryError(hdr.Name, "hard link to the symbolic link "+l.name)
		}
		if fold(target) == fold(name) {
			return imagedriver.InvalidEntryError(hdr.Name, "hard link to itself")
		}
		if strings.Contains(target, ":") {
			return imagedriver.InvalidEntryError(hdr.Name, "hard link to an alternate data stream")
		}
		return nil // the layer writer takes no streams after a link
	default:
		return imagedriver.InvalidEntryError(hdr.Name, fmt.Sprintf("entry type %q has no place in a layer", hdr.Typeflag))
	}
	r.streamOwner = hdr.Name
	return nil
}

// whiteout checks a whiteout entry: ".wh.<name>" deletes <name> from the
// parents.
func (r *rules) whiteout(entry, base string) error {
	gone := strings.TrimPrefix(base, whiteoutPrefix)
	switch {
	case strings.HasPrefix(base, whiteoutMeta):
		return imagedriver.InvalidEntryError(entry, "union file system metadata has no place in a Windows layer")
	case r.base:
		return imagedriver.InvalidEntryError(entry, "a base layer has nothing to delete")
	case gone == "" || gone == "." || gone == "..":
		return imagedriver.InvalidEntryError(entry, "whiteout of nothing")
	}
	return nil
}

// finish checks the layer once every entry has been seen: a link's target may
// run through links that came after it, so every link is resolved again.
func (r *rules) finish() error {
	for _, key := range slices.Sorted(maps.Keys(r.links)) {
		if err := r.checkLink(key); err != nil {
			return err
		}
	}
	return nil
}

// viaLink returns the name of the symbolic link that is the first proper
// prefix of the clean name name, "" when none is.
func (r *rules) viaLink(name string) string {
	if len(r.links) == 0 {
		return ""
	}
	key := fold(name)
	for i := range len(key) {
		if key[i] == '/' {
			if l, ok := r.links[key[:i]]; ok {
				return l.name
			}
		}
	}
	return ""
}

// checkLink checks the link whose folded name is key (see
// imagedriver.CheckLink).
func (r *rules) checkLink(key string) error {
	l := r.links[key]
	return imagedriver.CheckLink(l.name, key, l.target, func(k string) (string, bool) {
		t, ok := r.links[k]
		return t.target, ok
	}, fold)
}
