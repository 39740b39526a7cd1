package wclayer

import (
	"context"
	"errors"
)

// mount activates and prepares the scratch layer dir over parents and
// returns its volume. Activation and preparation are tried again, as a pair,
// while they fail in a way that may pass (see transient). On error the
// scratch is left unmounted.
func (s *Store) mount(ctx context.Context, dir string, parents []string) (string, error) {
	err := s.retry.do(ctx, func() error {
		if err := s.host.activate(dir); err != nil {
			return err
		}
		if err := s.host.prepare(dir, parents); err != nil {
			_ = s.host.deactivate(dir) // the next try activates it again
			return err
		}
		return nil
	}, transient, nil)
	if err != nil {
		return "", err
	}
	vol, err := s.host.mountPath(dir)
	if err == nil && vol == "" {
		err = errors.New("mount path: no volume")
	}
	if err != nil {
		return "", errors.Join(err, s.unmount(dir))
	}
	return vol, nil
}

// unmount undoes mount: it detaches the filter, then the disk.
func (s *Store) unmount(dir string) error {
	return errors.Join(s.host.unprepare(dir), s.host.deactivate(dir))
}

// destroy deletes the layer or scratch layer folder dir, and dir~removing,
// the leftover of an earlier try; neither need exist. A scratch is unmounted
// first. The folder is then renamed to dir~removing, so that its name is free
// at once and a crash leaves a leftover that is known for one, and destroyed
// with the layer APIs. Renaming and destroying are tried again while
// something holds a file in the folder (see locked); for a scratch, its disk
// is deactivated and detached between tries, since a disk still attached
// after a crash is what holds it.
//
// Unmounting a scratch that was never mounted fails; such failures are
// reported only to explain a destruction that failed too.
func (s *Store) destroy(ctx context.Context, dir string, scratch bool) error {
	gone := dir + removingSuffix
	if exists(gone) {
		if err := s.destroyFolder(ctx, gone, scratch); err != nil {
			return err
		}
	}
	if !exists(dir) {
		return nil
	}
	var unmountErr error
	var between func()
	if scratch {
		unmountErr = s.unmount(dir)
		between = func() {
			_ = s.host.deactivate(dir)
			_ = s.host.detachDisk(dir)
		}
	}
	err := s.retry.do(ctx, func() error { return s.host.rename(dir, gone) }, locked, between)
	if err == nil {
		err = s.destroyFolder(ctx, gone, scratch)
	}
	if err != nil {
		return errors.Join(err, unmountErr)
	}
	return nil
}

// destroyFolder destroys the layer folder dir with the layer APIs.
func (s *Store) destroyFolder(ctx context.Context, dir string, scratch bool) error {
	var between func()
	if scratch {
		between = func() { _ = s.host.detachDisk(dir) }
	}
	return s.retry.do(ctx, func() error { return s.host.destroyLayer(dir) }, locked, between)
}
