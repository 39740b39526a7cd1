package imagedriver

import (
	"fmt"
	"path"
	"slices"
	"strings"
)

// The rules a layer store applies to the entries of a layer tar, shared by
// the folder store and the Windows store so that both refuse the same
// entries with the same errors.

// MaxLinkHops is how many symbolic links a link's resolution may pass
// through: more than Windows (63) and Linux (40) follow.
const MaxLinkHops = 64

// UnsafeEntryError returns the ErrUnsafeEntry error for entry name.
func UnsafeEntryError(name, why string) error {
	return fmt.Errorf("%w %q: %s", ErrUnsafeEntry, name, why)
}

// InvalidEntryError returns the ErrInvalidImage error for entry name.
func InvalidEntryError(name, why string) error {
	return fmt.Errorf("%w: entry %q: %s", ErrInvalidImage, name, why)
}

// CleanEntryName returns the slash-separated clean form of a tar entry
// name, "" for the layer's root, and false when the name is absolute (a
// leading slash or backslash, a drive letter), holds a ".." element or a
// NUL. Backslashes count as separators, as they do on Windows, whatever the
// OS the check runs on.
func CleanEntryName(name string) (string, bool) {
	n := strings.ReplaceAll(name, `\`, "/")
	if strings.HasPrefix(n, "/") || HasVolume(n) || strings.ContainsRune(n, 0) {
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

// HasVolume reports whether p starts with a drive letter ("C:").
func HasVolume(p string) bool {
	return len(p) >= 2 && p[1] == ':' && ('a' <= p[0]|0x20 && p[0]|0x20 <= 'z')
}

// CheckLink resolves the symbolic link entry name, at key (its clean name,
// in the form links are looked up by) with target, through the layer's
// links as the operating system would, and refuses it with an
// ErrUnsafeEntry error naming the entry when the resolution leaves the
// layer, meets an absolute target, or passes through more than MaxLinkHops
// links. link returns the target of the link at a key, if there is one;
// fold maps a path element to key form (case folding where names are
// case-insensitive; nil keeps it as it is).
func CheckLink(name, key, target string, link func(key string) (string, bool), fold func(string) string) error {
	var stack []string // the resolved folder, from the layer's root, in key form
	if d := path.Dir(key); d != "." {
		stack = strings.Split(d, "/")
	}
	queue, hops := []string{target}, 0
	for len(queue) > 0 {
		c := queue[0]
		queue = queue[1:]
		if strings.HasPrefix(c, "/") || HasVolume(c) {
			return UnsafeEntryError(name, "link target "+target+" is absolute")
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
				return UnsafeEntryError(name, "link target "+target+" leads outside the layer")
			}
			stack = stack[:len(stack)-1]
			continue
		}
		if fold != nil {
			c = fold(c)
		}
		stack = append(stack, c)
		if t, ok := link(strings.Join(stack, "/")); ok {
			if hops++; hops > MaxLinkHops {
				return UnsafeEntryError(name, "link target "+target+" runs through too many links")
			}
			stack = stack[:len(stack)-1]
			queue = append([]string{t}, queue...)
		}
	}
	return nil
}
