//go:build windows

package wclayer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"github.com/Microsoft/go-winio"
	"github.com/Microsoft/go-winio/vhd"
	"github.com/Microsoft/hcsshim"
	"github.com/Microsoft/hcsshim/pkg/ociwclayer"
)

// ErrNoPrivileges is the class of New's failure to enable the backup and
// restore privileges: the agent does not run elevated.
var ErrNoPrivileges = errors.New("backup and restore privileges unavailable")

// New returns the store in folder root, creating the folder if needed. It
// enables the backup and restore privileges for the whole process, as the
// layer writer needs them, or fails with an error matching ErrNoPrivileges.
func New(root string) (*Store, error) {
	if err := winio.EnableProcessPrivileges([]string{winio.SeBackupPrivilege, winio.SeRestorePrivilege}); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoPrivileges, err)
	}
	return newStore(root, hcsHost{}, defaultRetry)
}

// hcsHost is the host on hcsshim's public layer API. The legacy functions
// take a DriverInfo and a layer id and work on filepath.Join(HomeDir, id);
// with an empty HomeDir the id is the layer folder's absolute path.
type hcsHost struct{}

var driverInfo hcsshim.DriverInfo

func (hcsHost) importLayer(ctx context.Context, r io.Reader, path string, parents []string) (int64, error) {
	n, err := ociwclayer.ImportLayerFromTar(ctx, r, path, parents)
	return n, hostErr("import layer", err)
}

func (hcsHost) destroyLayer(path string) error {
	return hostErr("destroy layer", hcsshim.DestroyLayer(driverInfo, path))
}

func (hcsHost) layerGUID(name string) (string, error) {
	g, err := hcsshim.NameToGuid(name)
	if err != nil {
		return "", hostErr("layer guid", err)
	}
	return g.ToString(), nil
}

func (hcsHost) createScratch(path string, parents []string) error {
	return hostErr("create scratch layer", hcsshim.CreateScratchLayer(driverInfo, path, "", parents))
}

func (hcsHost) activate(path string) error {
	return hostErr("activate layer", hcsshim.ActivateLayer(driverInfo, path))
}

func (hcsHost) deactivate(path string) error {
	return hostErr("deactivate layer", hcsshim.DeactivateLayer(driverInfo, path))
}

func (hcsHost) prepare(path string, parents []string) error {
	return hostErr("prepare layer", hcsshim.PrepareLayer(driverInfo, path, parents))
}

func (hcsHost) unprepare(path string) error {
	return hostErr("unprepare layer", hcsshim.UnprepareLayer(driverInfo, path))
}

func (hcsHost) mountPath(path string) (string, error) {
	vol, err := hcsshim.GetLayerMountPath(driverInfo, path)
	return vol, hostErr("layer mount path", err)
}

func (hcsHost) detachDisk(path string) error {
	return hostErr("detach disk", vhd.DetachVhd(filepath.Join(path, sandboxDisk)))
}

func (hcsHost) rename(oldPath, newPath string) error {
	return hostErr("rename", os.Rename(oldPath, newPath))
}

// hostErr wraps a failure of op as a *hostError with the Win32 code it
// carries. hcsshim's HcsError does not unwrap, so it is peeled here.
func hostErr(op string, err error) error {
	if err == nil {
		return nil
	}
	cause := err
	var he *hcsshim.HcsError
	if errors.As(cause, &he) {
		cause = he.Err
	}
	var code uint32
	var errno syscall.Errno
	if errors.As(cause, &errno) {
		code = uint32(errno)
	}
	return &hostError{op: op, code: code, err: err}
}
