package wclayer

import (
	"archive/tar"
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// model is a model of the Windows layer APIs, for the store's tests. Layer
// folders are plain folders; an import unpacks the folders and files of the
// tar, read as the layer writer reads it; a scratch layer is a folder with a
// sandbox.vhdx file and an activation and a preparation state. It keeps the
// rules the store relies on:
//
//   - an import needs its parents' folders and a new folder, creates the
//     folder of each file before writing it, and fails on a whiteout in a
//     base layer, with no Win32 code, as the layer writer does;
//   - a scratch is prepared only once activated, and its volume exists only
//     while activated; unpreparing or deactivating what is not prepared or
//     activated fails;
//   - an activated scratch's folder can be neither renamed nor destroyed
//     (access denied): its disk is attached; detaching the disk ends the
//     activation;
//
// and it fails any call on demand. It logs every call.
type model struct {
	root string // the store's root, which logged paths are relative to

	mu        sync.Mutex
	calls     []string
	activated map[string]bool
	prepared  map[string][]string // by scratch folder, its parents
	faults    map[string][]uint32 // by operation, the codes of its next failures
}

const codeInvalidState = 0x139F // ERROR_INVALID_STATE

func newModel(root string) *model {
	return &model{root: root, activated: map[string]bool{}, prepared: map[string][]string{}, faults: map[string][]uint32{}}
}

// newTestStore returns a store in a new folder on a new model, trying layer
// API calls as the real store does, without waiting between tries.
func newTestStore(t *testing.T) (*Store, *model) {
	t.Helper()
	root := t.TempDir()
	m := newModel(root)
	s, err := newStore(root, m, retryPolicy{attempts: defaultRetry.attempts})
	if err != nil {
		t.Fatal(err)
	}
	return s, m
}

// fail makes the next len(codes) calls of op fail with codes, in order.
func (m *model) fail(op string, codes ...uint32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.faults[op] = append(m.faults[op], codes...)
}

// call logs a call of op on p and returns its injected failure, if any.
func (m *model) call(op, p string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	rel, err := filepath.Rel(m.root, p)
	if err != nil {
		rel = p
	}
	m.calls = append(m.calls, op+" "+filepath.ToSlash(rel))
	if codes := m.faults[op]; len(codes) > 0 {
		m.faults[op] = codes[1:]
		return &hostError{op: op, code: codes[0], err: fmt.Errorf("injected failure %#x", codes[0])}
	}
	return nil
}

// log returns the calls so far and forgets them.
func (m *model) log() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.calls
	m.calls = nil
	return c
}

func (m *model) mounted(p string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.activated[p]
}

func failure(op string, code uint32, format string, args ...any) error {
	return &hostError{op: op, code: code, err: fmt.Errorf(format, args...)}
}

func (m *model) importLayer(ctx context.Context, r io.Reader, p string, parents []string) (int64, error) {
	if err := m.call("import", p); err != nil {
		return 0, err
	}
	for _, pp := range parents {
		if _, err := os.Stat(pp); err != nil {
			return 0, failure("import", codePathNotFound, "parent %s: %v", pp, err)
		}
	}
	if err := os.Mkdir(p, 0o755); err != nil {
		return 0, failure("import", codeAlreadyExists, "%v", err)
	}
	root, err := os.OpenRoot(p)
	if err != nil {
		return 0, err
	}
	defer root.Close()
	var size int64
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return size, nil
		}
		if err != nil {
			return 0, err
		}
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		name := strings.ReplaceAll(hdr.Name, `\`, "/")
		switch {
		case strings.HasPrefix(path.Base(name), whiteoutPrefix):
			if len(parents) == 0 {
				return 0, failure("import", 0, "base layer cannot have tombstones")
			}
		case strings.Contains(path.Base(name), ":"): // a stream of the file before
		case hdr.Typeflag == tar.TypeDir:
			if err := root.Mkdir(name, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
				return 0, failure("import", codePathNotFound, "%v", err)
			}
		case hdr.Typeflag == tar.TypeReg:
			f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
			if err != nil {
				return 0, failure("import", codePathNotFound, "%v", err)
			}
			n, err := io.Copy(f, tr)
			f.Close()
			if err != nil {
				return 0, err
			}
			size += n
		}
	}
}

func (m *model) destroyLayer(p string) error {
	if err := m.call("destroy", p); err != nil {
		return err
	}
	if m.mounted(p) {
		return failure("destroy", codeAccessDenied, "%s: disk attached", p)
	}
	return os.RemoveAll(p)
}

func (m *model) layerGUID(name string) (string, error) {
	if err := m.call("guid", name); err != nil {
		return "", err
	}
	return guidOf(name), nil
}

func guidOf(name string) string {
	h := sha1.Sum([]byte(name))
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

func (m *model) createScratch(p string, parents []string) error {
	if err := m.call("create", p); err != nil {
		return err
	}
	for _, pp := range parents {
		if _, err := os.Stat(pp); err != nil {
			return failure("create", codePathNotFound, "parent %s: %v", pp, err)
		}
	}
	if err := os.Mkdir(p, 0o755); err != nil {
		return failure("create", codeAlreadyExists, "%v", err)
	}
	return os.WriteFile(filepath.Join(p, sandboxDisk), []byte("vhdx"), 0o644)
}

func (m *model) activate(p string) error {
	if err := m.call("activate", p); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(p, sandboxDisk)); err != nil {
		return failure("activate", codePathNotFound, "%v", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.activated[p] = true
	return nil
}

func (m *model) deactivate(p string) error {
	if err := m.call("deactivate", p); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.activated[p] {
		return failure("deactivate", codeInvalidState, "%s: not activated", p)
	}
	delete(m.activated, p)
	delete(m.prepared, p)
	return nil
}

func (m *model) prepare(p string, parents []string) error {
	if err := m.call("prepare", p); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.activated[p] {
		return failure("prepare", codeInvalidState, "%s: not activated", p)
	}
	m.prepared[p] = parents
	return nil
}

func (m *model) unprepare(p string) error {
	if err := m.call("unprepare", p); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.prepared[p] == nil {
		return failure("unprepare", codeInvalidState, "%s: not prepared", p)
	}
	delete(m.prepared, p)
	return nil
}

func (m *model) mountPath(p string) (string, error) {
	if err := m.call("mountpath", p); err != nil {
		return "", err
	}
	if !m.mounted(p) {
		return "", failure("mountpath", codeInvalidState, "%s: not activated", p)
	}
	return `\\?\Volume{` + guidOf(p) + `}\`, nil
}

func (m *model) detachDisk(p string) error {
	if err := m.call("detach", p); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.activated[p] {
		return failure("detach", codeInvalidState, "%s: not attached", p)
	}
	delete(m.activated, p)
	delete(m.prepared, p)
	return nil
}

func (m *model) rename(oldPath, newPath string) error {
	if err := m.call("rename", oldPath); err != nil {
		return err
	}
	if m.mounted(oldPath) {
		return failure("rename", codeAccessDenied, "%s: disk attached", oldPath)
	}
	return os.Rename(oldPath, newPath)
}
