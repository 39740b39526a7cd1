// Package imagedrivertest holds the conformance suite of the imagedriver
// contract ([RunLayerStore]) and builders of layer tars for tests.
package imagedrivertest

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"slices"
	"testing"
)

// Entry is one entry of a test layer tar.
type Entry struct {
	Name     string
	Type     byte // tar.TypeReg when zero
	Body     string
	Linkname string // target of a symbolic or hard link
}

// Tar returns a tar archive of entries, in order, and its diff id (the sha256
// of the archive).
func Tar(t testing.TB, entries ...Entry) ([]byte, string) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.Name, Typeflag: e.Type, Linkname: e.Linkname, Mode: 0o644, Format: tar.FormatPAX}
		switch e.Type {
		case 0, tar.TypeReg:
			hdr.Typeflag, hdr.Size = tar.TypeReg, int64(len(e.Body))
		case tar.TypeDir:
			hdr.Mode = 0o755
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatalf("tar header %q: %v", e.Name, err)
		}
		if _, err := tw.Write([]byte(e.Body)); err != nil {
			t.Fatalf("tar body %q: %v", e.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), DiffID(buf.Bytes())
}

// DiffID returns the digest of an uncompressed layer.
func DiffID(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// WindowsLayer returns a layer tar in the Windows layout, as Windows itself
// exports one: a Files directory holding files (names relative to Files,
// slash-separated, parent directories created), then a Hives directory with
// the registry deltas a layer carries. Names are written in sorted order.
func WindowsLayer(t testing.TB, files map[string]string) ([]byte, string) {
	t.Helper()
	entries := []Entry{{Name: "Files", Type: tar.TypeDir}}
	seen := map[string]bool{}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		for i := range len(name) {
			if name[i] == '/' && !seen[name[:i]] {
				seen[name[:i]] = true
				entries = append(entries, Entry{Name: "Files/" + name[:i], Type: tar.TypeDir})
			}
		}
		entries = append(entries, Entry{Name: "Files/" + name, Body: files[name]})
	}
	entries = append(entries, Entry{Name: "Hives", Type: tar.TypeDir})
	for _, h := range []string{"DefaultUser_Delta", "Sam_Delta", "Security_Delta", "Software_Delta", "System_Delta"} {
		entries = append(entries, Entry{Name: "Hives/" + h, Body: "regf" + h})
	}
	return Tar(t, entries...)
}
