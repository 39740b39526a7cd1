package actors

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/berthhq/berth/events"
	"github.com/berthhq/berth/hcsdriver"
	"github.com/berthhq/berth/imagedriver"
)

// withImage merges the image's configuration into a container spec, as
// docker does: the spec's entrypoint replaces the image's entrypoint and
// command; otherwise the image's entrypoint stays and the spec's args, if
// any, replace the image's command. The working directory and user come
// from the spec when it sets them, and the environment is the image's with
// the spec's variables over it. A spec and an image that name no command
// between them are refused.
func withImage(spec events.ContainerSpec, ref string, ic events.ImageConfig) (events.ContainerSpec, error) {
	s := spec
	s.Command.Entrypoint, s.Command.Args = slices.Clone(spec.Command.Entrypoint), slices.Clone(spec.Command.Args)
	if len(s.Command.Entrypoint) == 0 {
		s.Command.Entrypoint = slices.Clone(ic.Entrypoint)
		if len(s.Command.Args) == 0 {
			s.Command.Args = slices.Clone(ic.Cmd)
		}
	}
	if len(s.Command.Entrypoint)+len(s.Command.Args) == 0 {
		return s, fmt.Errorf("%w: spec.command: neither the spec nor image %s names a command to run", events.ErrInvalid, ref)
	}
	if s.Command.Workdir == "" {
		s.Command.Workdir = ic.WorkingDir
	}
	if s.User == "" {
		s.User = ic.User
	}
	if len(ic.Env) > 0 {
		env := make(map[string]string, len(ic.Env)+len(spec.Env))
		for _, kv := range ic.Env {
			if k, v, ok := strings.Cut(kv, "="); ok && k != "" {
				env[k] = v
			}
		}
		maps.Copy(env, spec.Env)
		s.Env = env
	}
	return s, nil
}

// createScratch records scratch_creating and creates the container's
// scratch layer over img's layers, then records scratch_created. It returns
// the scratch layer and the image's layers as the compute system takes
// them, immediate parent first. On failure it records
// scratch_create_failed, and nothing is left in the store. A Hyper-V
// container's scratch is left unmounted: its utility VM attaches it.
func (e *opEnv) createScratch(ctx context.Context, r *opResult, img *events.Image, hyperV bool) (imagedriver.Scratch, []hcsdriver.Layer, error) {
	store := e.n.cfg.Layers
	parents := make([]string, 0, len(img.Layers))
	for _, l := range slices.Backward(img.Layers) {
		parents = append(parents, l.ChainID)
	}
	if err := e.intent(ctx, r, events.ContainerScratchCreating, events.ScratchCreatingData{Image: img.ID, Parents: parents}); err != nil {
		return imagedriver.Scratch{}, nil, journalErr(err)
	}
	var (
		sc     imagedriver.Scratch
		layers []hcsdriver.Layer
	)
	err := e.n.hostCall(ctx, "scratch.create", func() error {
		chain := make([]imagedriver.Layer, 0, len(parents))
		for _, id := range parents {
			l, err := store.Get(ctx, id)
			if err != nil {
				return err
			}
			chain = append(chain, l)
			layers = append(layers, hcsdriver.Layer{ID: l.GUID, Path: l.Path})
		}
		var err error
		sc, err = store.CreateScratch(ctx, e.id, chain, imagedriver.ScratchOptions{Unmounted: hyperV})
		return err
	})
	if err != nil {
		err = fmt.Errorf("%w: scratch layer of %s over image %s: %w", imagedriver.Class(err), e.id, short(img.ID), err)
		if aerr := e.record(ctx, r, e.event(events.ContainerScratchCreateFailed, failure(err))); aerr != nil {
			return sc, nil, journalErr(aerr)
		}
		return sc, nil, err
	}
	if err := e.record(ctx, r, e.event(events.ContainerScratchCreated, events.ScratchCreatedData{Path: sc.Path, VolumePath: sc.VolumePath})); err != nil {
		return sc, nil, journalErr(err)
	}
	return sc, layers, nil
}

// removeScratch deletes the container's scratch layer from the store and
// records scratch_removed. The compute system that used it must be gone.
func (e *opEnv) removeScratch(ctx context.Context, r *opResult) error {
	store := e.n.cfg.Layers
	if store == nil {
		return fmt.Errorf("%w: scratch layer of %s: this agent has no layer store", events.ErrUnavailable, e.id)
	}
	err := e.n.hostCall(ctx, "scratch.remove", func() error { return store.RemoveScratch(ctx, e.id) })
	if err != nil && !errors.Is(err, imagedriver.ErrNotFound) {
		return fmt.Errorf("%w: removing the scratch layer of %s: %w", imagedriver.Class(err), e.id, err)
	}
	if err := e.record(ctx, r, e.event(events.ContainerScratchRemoved, nil)); err != nil {
		return journalErr(err)
	}
	return nil
}
