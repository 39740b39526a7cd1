package dirlayer

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/berthhq/berth/imagedriver"
)

// layerMeta is what a layer's completion marker records.
type layerMeta struct {
	DiffID  string   `json:"diff_id"`
	Parents []string `json:"parents,omitempty"` // chain ids, immediate parent first
	Size    int64    `json:"size"`
	// Whiteouts are the paths (slash-separated, relative to the layer) that
	// the layer deletes from its parents; Opaque the directories whose
	// parents' content it hides.
	Whiteouts []string `json:"whiteouts,omitempty"`
	Opaque    []string `json:"opaque,omitempty"`
}

const (
	whiteoutPrefix = ".wh."
	whiteoutMeta   = ".wh..wh."
	opaqueMarker   = ".wh..wh..opq"
	// Limits on entry names, far above what Windows layers hold, that keep
	// a hostile layer from building trees too deep to handle.
	maxNameLen = 4096
	maxDepth   = 256
)

// unpack extracts the layer tar r into the empty folder dir, reading r to its
// end, and checks that r's sha256 is diffID.
func unpack(ctx context.Context, dir string, r io.Reader, diffID string) (layerMeta, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return layerMeta{}, fmt.Errorf("open layer folder: %w", err)
	}
	defer root.Close()
	src := &source{ctx: ctx, r: r, h: newHasher(sha256.New()), diffID: diffID}
	defer src.h.Close()
	u := &unpacker{root: root, files: map[string]int64{}, links: map[string]string{}, bw: bufio.NewWriterSize(nil, 256<<10)}
	tr := tar.NewReader(src)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return layerMeta{}, src.fault(err)
		}
		if err := u.entry(hdr, tr); err != nil {
			return layerMeta{}, src.fault(err)
		}
	}
	// What follows the end-of-archive blocks is part of the diff id too.
	if _, err := io.Copy(io.Discard, src); err != nil {
		return layerMeta{}, src.fault(err)
	}
	if err := src.mismatch(); err != nil {
		return layerMeta{}, err
	}
	// A link's target may run through links created after it, so the
	// escape check is repeated over the finished tree.
	for _, name := range slices.Sorted(maps.Keys(u.links)) {
		if err := imagedriver.CheckLink(name, name, u.links[name], u.link, nil); err != nil {
			return layerMeta{}, err
		}
	}
	var size int64
	for _, n := range u.files {
		size += n
	}
	return layerMeta{DiffID: diffID, Size: size, Whiteouts: u.whiteouts, Opaque: u.opaque}, nil
}

// source hashes what the tar reader reads (on the hasher's goroutine, beside
// the unpacking), stops at ctx's end, and keeps the underlying reader's
// failure so that it is not mistaken for a bad archive.
type source struct {
	ctx    context.Context
	r      io.Reader
	h      *hasher
	diffID string
	err    error // the first failure of r or ctx
}

func (s *source) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if err := s.ctx.Err(); err != nil {
		s.err = err
		return 0, err
	}
	n, err := s.r.Read(p)
	s.h.Write(p[:n])
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

// mismatch returns an ErrDigestMismatch error when what was read does not
// hash to the diff id. Call it once, when r has been read to its end.
func (s *source) mismatch() error {
	if got := "sha256:" + hex.EncodeToString(s.h.Sum()); got != s.diffID {
		return fmt.Errorf("%w: layer content has diff id %s, want %s", imagedriver.ErrDigestMismatch, got, s.diffID)
	}
	return nil
}

// fault classifies an error met while unpacking: the reader's own failure is
// passed on, and a classified error kept. A broken archive is read to its end
// first: when its digest is wrong too, the content was damaged on its way
// (ErrDigestMismatch); otherwise the layer itself is bad (ErrInvalidImage).
func (s *source) fault(err error) error {
	if s.err == nil && (errors.Is(err, tar.ErrHeader) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, tar.ErrFieldTooLong) || errors.Is(err, tar.ErrInsecurePath)) {
		if _, derr := io.Copy(io.Discard, s); derr == nil {
			if merr := s.mismatch(); merr != nil {
				return merr
			}
		}
		if s.err == nil {
			return fmt.Errorf("%w: layer is not a valid tar archive: %v", imagedriver.ErrInvalidImage, err)
		}
	}
	if s.err != nil {
		return fmt.Errorf("read layer: %w", s.err)
	}
	return err
}

type unpacker struct {
	root      *os.Root
	files     map[string]int64  // regular files written, by name, with their size
	links     map[string]string // symbolic links, by name, with their slash-separated target
	whiteouts []string
	opaque    []string
	// bw writes file content in writes of its size but the last: a
	// decompressor hands out a few KiB per read, and a write for each
	// would cost a system call each.
	bw *bufio.Writer
}

// entryFault wraps an error of the file system met while writing an entry:
// a full, failing or read-only disk stays what it is; anything else (a file
// where a folder must go, a name the file system refuses) is the layer's
// fault.
func entryFault(name string, err error) error {
	for _, host := range []error{syscall.ENOSPC, syscall.EDQUOT, syscall.EIO, syscall.EROFS, fs.ErrPermission} {
		if errors.Is(err, host) {
			return fmt.Errorf("entry %q: %w", name, err)
		}
	}
	return imagedriver.InvalidEntryError(name, err.Error())
}

func (u *unpacker) entry(hdr *tar.Header, body io.Reader) error {
	name, ok := cleanName(hdr.Name)
	if !ok {
		return imagedriver.UnsafeEntryError(hdr.Name, "absolute or climbing out of the layer")
	}
	if len(name) > maxNameLen || strings.Count(name, "/") >= maxDepth {
		return imagedriver.InvalidEntryError(hdr.Name[:min(len(hdr.Name), 64)]+"...", "name too long or too deep")
	}
	if name == "" {
		return nil // the layer's root folder
	}
	if via := u.viaLink(name); via != "" {
		return imagedriver.UnsafeEntryError(hdr.Name, "its path passes through the symbolic link "+via)
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return imagedriver.InvalidEntryError(hdr.Name, "sparse files have no place in a layer")
		}
	}
	dir, base := path.Dir(name), path.Base(name)
	if strings.HasPrefix(base, whiteoutPrefix) {
		return u.whiteout(hdr.Name, dir, base)
	}
	if dir != "." {
		if err := u.root.MkdirAll(dir, 0o755); err != nil {
			return entryFault(hdr.Name, err)
		}
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		if fi, err := u.root.Lstat(name); err == nil && fi.IsDir() {
			return nil
		}
		if err := u.clear(name); err != nil {
			return err
		}
		if err := u.root.Mkdir(name, 0o755); err != nil {
			return entryFault(hdr.Name, err)
		}
	case tar.TypeReg:
		if err := u.clear(name); err != nil {
			return err
		}
		perm := fs.FileMode(0o644)
		if hdr.Mode&0o111 != 0 {
			perm = 0o755
		}
		f, err := u.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
		if err != nil {
			return entryFault(hdr.Name, err)
		}
		w := &fileWriter{f: f}
		u.bw.Reset(w)
		n, err := u.bw.ReadFrom(body)
		if err == nil {
			err = u.bw.Flush() // a failure is w.err
		}
		if cerr := f.Close(); w.err == nil && cerr != nil {
			w.err = cerr
		}
		if w.err != nil {
			return entryFault(hdr.Name, w.err)
		}
		if err != nil { // reading the archive
			return fmt.Errorf("entry %q: %w", hdr.Name, err)
		}
		u.files[name] = n
	case tar.TypeSymlink:
		target := strings.ReplaceAll(hdr.Linkname, `\`, "/")
		if target == "" {
			return imagedriver.InvalidEntryError(hdr.Name, "symbolic link without a target")
		}
		if err := u.clear(name); err != nil {
			return err
		}
		u.links[name] = target
		if err := imagedriver.CheckLink(name, name, u.links[name], u.link, nil); err != nil {
			return err
		}
		if err := u.root.Symlink(hdr.Linkname, name); err != nil {
			return entryFault(hdr.Name, err)
		}
	case tar.TypeLink:
		target, ok := cleanName(hdr.Linkname)
		if !ok || target == "" {
			return imagedriver.UnsafeEntryError(hdr.Name, "hard link to "+hdr.Linkname+", outside the layer")
		}
		if via := u.viaLink(target); via != "" {
			return imagedriver.UnsafeEntryError(hdr.Name, "hard link through the symbolic link "+via)
		}
		if _, ok := u.links[target]; ok {
			return imagedriver.UnsafeEntryError(hdr.Name, "hard link to the symbolic link "+target)
		}
		if target == name {
			return imagedriver.InvalidEntryError(hdr.Name, "hard link to itself")
		}
		if fi, err := u.root.Lstat(target); err != nil || !fi.Mode().IsRegular() {
			return imagedriver.InvalidEntryError(hdr.Name, "hard link to "+hdr.Linkname+", which is not a file of the layer")
		}
		if err := u.clear(name); err != nil {
			return err
		}
		if err := u.root.Link(target, name); err != nil {
			return entryFault(hdr.Name, err)
		}
	default:
		return imagedriver.InvalidEntryError(hdr.Name, fmt.Sprintf("entry type %q has no place in a layer", hdr.Typeflag))
	}
	return nil
}

// whiteout records a deletion: ".wh.<name>" deletes <name> from the parents,
// ".wh..wh..opq" hides everything the parents hold under its directory.
// Other ".wh..wh." entries are metadata of union file systems and are
// dropped.
func (u *unpacker) whiteout(entry, dir, base string) error {
	switch {
	case base == opaqueMarker:
		u.opaque = append(u.opaque, dir)
	case strings.HasPrefix(base, whiteoutMeta):
	default:
		gone := strings.TrimPrefix(base, whiteoutPrefix)
		if gone == "" || gone == "." || gone == ".." {
			return imagedriver.InvalidEntryError(entry, "whiteout of nothing")
		}
		u.whiteouts = append(u.whiteouts, path.Join(dir, gone))
	}
	return nil
}

// clear removes whatever an earlier entry left at name, so that a later entry
// replaces it as tar extraction does.
func (u *unpacker) clear(name string) error {
	if _, err := u.root.Lstat(name); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err := u.root.RemoveAll(name); err != nil {
		return fmt.Errorf("entry %q: replace: %w", name, err)
	}
	for k := range u.files {
		if under(k, name) {
			delete(u.files, k)
		}
	}
	for k := range u.links {
		if under(k, name) {
			delete(u.links, k)
		}
	}
	return nil
}

func under(p, dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }

// viaLink returns the first proper prefix of name that is a symbolic link.
func (u *unpacker) viaLink(name string) string {
	if len(u.links) == 0 {
		return ""
	}
	for i := range len(name) {
		if name[i] == '/' {
			if _, ok := u.links[name[:i]]; ok {
				return name[:i]
			}
		}
	}
	return ""
}

// fileWriter writes to f, keeping its failure apart from the reader's.
type fileWriter struct {
	f   *os.File
	err error
}

func (w *fileWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	if err != nil && w.err == nil {
		w.err = err
	}
	return n, err
}

// cleanName is imagedriver.CleanEntryName, refusing also a name that is
// not a local name on this operating system.
func cleanName(name string) (string, bool) {
	n, ok := imagedriver.CleanEntryName(name)
	if ok && n != "" {
		ok = filepath.IsLocal(filepath.FromSlash(n))
	}
	return n, ok
}

// link returns the target of the layer's link at name.
func (u *unpacker) link(name string) (string, bool) {
	t, ok := u.links[name]
	return t, ok
}
