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
	maxLinkHops    = 64         // more than Windows (63) and Linux (40) follow
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

func unsafeEntry(name, why string) error {
	return fmt.Errorf("%w %q: %s", imagedriver.ErrUnsafeEntry, name, why)
}

func invalidEntry(name, why string) error {
	return fmt.Errorf("%w: entry %q: %s", imagedriver.ErrInvalidImage, name, why)
}

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
	name, ok := cleanName(hdr.Name)
	if !ok {
		return unsafeEntry(hdr.Name, "absolute or climbing out of the layer")
	}
	if len(name) > maxNameLen || strings.Count(name, "/") >= maxDepth {
		return invalidEntry(hdr.Name[:min(len(hdr.Name), 64)]+"...", "name too long or too deep")
	}
	if via := r.viaLink(name); via != "" {
		return unsafeEntry(hdr.Name, "its path passes through the symbolic link "+via)
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return invalidEntry(hdr.Name, "sparse files have no place in a layer")
		}
	}
	dir, base := path.Split(name)
	if strings.Contains(dir, ":") {
		return invalidEntry(hdr.Name, "a folder name holds a colon")
	}
	if strings.Contains(base, ":") {
		// An alternate data stream of the entry before it.
		if hdr.Typeflag != tar.TypeReg || owner == "" || !strings.HasPrefix(hdr.Name, owner+":") {
			return invalidEntry(hdr.Name, "an alternate data stream that does not follow its file")
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
			return invalidEntry(hdr.Name, "symbolic link without a target")
		}
		r.links[fold(name)] = link{hdr.Name, target}
		if err := r.checkLink(fold(name)); err != nil {
			return err
		}
	case tar.TypeLink:
		target, ok := cleanName(hdr.Linkname)
		if !ok || target == "" {
			return unsafeEntry(hdr.Name, "hard link to "+hdr.Linkname+", outside the layer")
		}
		if via := r.viaLink(target); via != "" {
			return unsafeEntry(hdr.Name, "hard link through the symbolic link "+via)
		}
		if l, ok := r.links[fold(target)]; ok {
			return unsafeEntry(hdr.Name, "hard link to the symbolic link "+l.name)
		}
		if fold(target) == fold(name) {
			return invalidEntry(hdr.Name, "hard link to itself")
		}
		if strings.Contains(target, ":") {
			return invalidEntry(hdr.Name, "hard link to an alternate data stream")
		}
		return nil // the layer writer takes no streams after a link
	default:
		return invalidEntry(hdr.Name, fmt.Sprintf("entry type %q has no place in a layer", hdr.Typeflag))
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
		return invalidEntry(entry, "union file system metadata has no place in a Windows layer")
	case r.base:
		return invalidEntry(entry, "a base layer has nothing to delete")
	case gone == "" || gone == "." || gone == "..":
		return invalidEntry(entry, "whiteout of nothing")
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

// checkLink resolves the symbolic link whose folded name is key through the
// links of the layer, as the operating system would, and refuses it when the
// resolution leaves the layer, meets an absolute target, or takes too many
// hops.
func (r *rules) checkLink(key string) error {
	name, target := r.links[key].name, r.links[key].target
	var stack []string // the resolved folder, from the layer's root, folded
	if d := path.Dir(key); d != "." {
		stack = strings.Split(d, "/")
	}
	queue, hops := []string{target}, 0
	for len(queue) > 0 {
		c := queue[0]
		queue = queue[1:]
		if strings.HasPrefix(c, "/") || hasVolume(c) {
			return unsafeEntry(name, "link target "+target+" is absolute")
		}
		if strings.Contains(c, "/") {
			queue = append(strings.Split(c, "/"), queue...)
			continue
		}
		switch c {
		case "", ".":
			continue
		case "..":
			if len(stack) == 0 {
				return unsafeEntry(name, "link target "+target+" leads outside the layer")
			}
			stack = stack[:len(stack)-1]
			continue
		}
		stack = append(stack, fold(c))
		if l, ok := r.links[strings.Join(stack, "/")]; ok {
			if hops++; hops > maxLinkHops {
				return unsafeEntry(name, "link target "+target+" runs through too many links")
			}
			stack = stack[:len(stack)-1]
			queue = append([]string{l.target}, queue...)
		}
	}
	return nil
}

// cleanName returns the slash-separated clean form of a tar entry name, ""
// for the layer's root, and false when the name is absolute (a leading slash
// or backslash, a drive letter), holds a ".." element or a NUL. Backslashes
// count as separators, as they do on Windows, whatever the OS the check runs
// on.
func cleanName(name string) (string, bool) {
	n := strings.ReplaceAll(name, `\`, "/")
	if strings.HasPrefix(n, "/") || hasVolume(n) || strings.ContainsRune(n, 0) {
		return "", false
	}
	if slices.Contains(strings.Split(n, "/"), "..") {
		return "", false
	}
	if n = path.Clean(n); n == "." {
		return "", true
	}
	return n, true
}

func hasVolume(p string) bool {
	return len(p) >= 2 && p[1] == ':' && ('a' <= p[0]|0x20 && p[0]|0x20 <= 'z')
}
