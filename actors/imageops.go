package actors

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/berthhq/berth/events"
	"github.com/berthhq/berth/imagedriver"
)

// imageOp runs one exclusive image verb: tag, remove, prune or load. No
// pull runs meanwhile; leases are the creates between their ensure and
// their scratch_creating, which count as users.
type imageOp struct {
	n      *Node
	cmd    events.Command
	leases map[string]int
	facts  []events.Event
}

// run executes the command and records its facts and outcome in one batch.
func (o *imageOp) run(ctx context.Context) *answer {
	var (
		res any
		err error
	)
	switch o.cmd.Verb {
	case events.VerbImageTag:
		res, err = o.tag(ctx)
	case events.VerbImageRemove:
		res, err = o.remove(ctx)
	case events.VerbImagePrune:
		res, err = o.prune(ctx)
	case events.VerbImageLoad:
		res, err = o.load(ctx)
	default:
		err = fmt.Errorf("%w: verb %q", events.ErrInvalid, o.cmd.Verb)
	}
	batch := append(o.facts, completed(o.n.cfg.Node, o.cmd, res, err))
	evs, aerr := o.n.cfg.Journal.Append(ctx, batch...)
	if aerr != nil {
		o.n.cfg.Logger.Error().Err(aerr).Str("verb", o.cmd.Verb).Msg("image outcome not recorded")
		return &answer{id: o.cmd.ID, reply: events.NewReply(o.cmd.ID, nil, journalErr(aerr))}
	}
	return &answer{id: o.cmd.ID, reply: batchReply(evs[len(evs)-1])}
}

func (o *imageOp) event(typ, subject string, data any) {
	o.facts = append(o.facts, events.NewEvent(o.n.cfg.Node, typ, subject, o.cmd.ID, data))
}

// find looks ref up in the fold: a reference or an image id.
func (o *imageOp) find(ctx context.Context, ref string) (imageView, *events.Image, string, error) {
	v, err := o.n.images(ctx)
	if err != nil {
		return v, nil, "", err
	}
	norm, nerr := o.n.cfg.Images.Normalize(ref)
	if nerr != nil {
		norm = ""
	}
	im, err := v.byRef(ref, norm)
	if err != nil && nerr != nil && !strings.HasPrefix(ref, "sha256:") {
		err = fmt.Errorf("%w: image %q: %v", events.ErrInvalid, ref, nerr)
	}
	return v, im, norm, err
}

func (o *imageOp) tag(ctx context.Context) (any, error) {
	_, im, _, err := o.find(ctx, o.cmd.Image.Ref)
	if err != nil {
		return nil, err
	}
	target, err := o.n.cfg.Images.Normalize(o.cmd.Image.Target)
	if err != nil {
		return nil, fmt.Errorf("%w: image.target %q: %v", events.ErrInvalid, o.cmd.Image.Target, err)
	}
	if strings.Contains(target, "@") {
		return nil, fmt.Errorf("%w: image.target %q: a tag cannot be a digest reference", events.ErrInvalid, o.cmd.Image.Target)
	}
	o.event(events.ImageTagged, im.ID, events.ImageRefData{Ref: target})
	cp := *im
	cp.Refs = append(slices.DeleteFunc(slices.Clone(im.Refs), func(r string) bool { return r == target }), target)
	slices.Sort(cp.Refs)
	return events.ImageResult{Image: cp}, nil
}

func (o *imageOp) users(v imageView, id string) []string {
	users := slices.Clone(v.users[id])
	if n := o.leases[id]; n > 0 {
		users = append(users, fmt.Sprintf("(%d being created)", n))
	}
	return users
}

func (o *imageOp) remove(ctx context.Context) (any, error) {
	ref := o.cmd.Image.Ref
	v, im, norm, err := o.find(ctx, ref)
	if err != nil {
		return nil, err
	}
	byName := norm != "" && slices.Contains(im.Refs, norm)
	var res events.ImageRemoveResult
	// One name of several: take that name away, as docker rmi does.
	if byName && len(im.Refs) > 1 {
		o.event(events.ImageRemoved, im.ID, events.ImageRemovedData{Refs: []string{norm}})
		res.Untagged = []string{norm}
		return res, nil
	}
	if !byName && len(im.Refs) > 1 && !o.cmd.Force {
		return nil, fmt.Errorf("%w: image %s has several names (%s): remove them one by one, or remove the image with force",
			events.ErrConflict, short(im.ID), strings.Join(im.Refs, ", "))
	}
	if users := o.users(v, im.ID); len(users) > 0 {
		if !o.cmd.Force {
			return nil, fmt.Errorf("%w: image %s is used by container %s: remove the container first, or remove the image with force, "+
				"which takes its names away and leaves its layers to the container until the container is removed",
				events.ErrConflict, ref, strings.Join(users, ", "))
		}
		o.event(events.ImageRemoved, im.ID, events.ImageRemovedData{Refs: im.Refs})
		res.Untagged, res.Kept = im.Refs, v.users[im.ID]
		return res, nil
	}
	return o.delete(ctx, v, im, &res)
}

// delete removes im and the layers of it no other image uses, and records
// image.removed.
func (o *imageOp) delete(ctx context.Context, v imageView, im *events.Image, res *events.ImageRemoveResult) (any, error) {
	shared := map[string]bool{}
	for id, other := range v.images {
		if id != im.ID {
			for _, l := range other.Layers {
				shared[l.ChainID] = true
			}
		}
	}
	var layers []string
	for _, l := range slices.Backward(im.Layers) {
		if !shared[l.ChainID] {
			layers = append(layers, l.ChainID)
		}
	}
	removed, reclaimed, err := o.removeLayers(ctx, layers)
	if err != nil && len(removed) == 0 {
		return nil, err
	}
	o.event(events.ImageRemoved, im.ID, events.ImageRemovedData{Refs: im.Refs, Deleted: true, Layers: removed, Reclaimed: reclaimed})
	delete(v.images, im.ID)
	res.Untagged = append(res.Untagged, im.Refs...)
	res.Deleted = append(res.Deleted, im.ID)
	res.Layers += len(removed)
	res.Reclaimed += reclaimed
	return *res, err
}

// removeLayers removes layers from the store, children first, and returns
// those it removed and their bytes. A layer that is gone already counts as
// removed; one in use (a parent of a scratch layer or of another image's
// layer) stops the removal of it and of its parents without an error.
func (o *imageOp) removeLayers(ctx context.Context, ids []string) (removed []string, reclaimed int64, err error) {
	store := o.n.cfg.Layers
	for _, id := range ids {
		var size int64
		if l, gerr := store.Get(ctx, id); gerr == nil {
			size = l.Size
		}
		err := o.n.hostCall(ctx, "layer.remove", func() error { return store.Remove(ctx, id) })
		switch {
		case errors.Is(err, imagedriver.ErrInUse):
			return removed, reclaimed, nil
		case err != nil && !errors.Is(err, imagedriver.ErrNotFound):
			return removed, reclaimed, fmt.Errorf("%w: removing layer %s: %w", imagedriver.Class(err), id, err)
		}
		removed = append(removed, id)
		reclaimed += size
	}
	return removed, reclaimed, nil
}

// prune deletes the images without a name (with All, every image) that no
// container uses, then every layer in the store that no image uses.
func (o *imageOp) prune(ctx context.Context) (any, error) {
	v, err := o.n.images(ctx)
	if err != nil {
		return nil, err
	}
	var res events.ImageRemoveResult
	ids := make([]string, 0, len(v.images))
	for id := range v.images {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		im := v.images[id]
		if (len(im.Refs) > 0 && !o.cmd.Image.All) || len(o.users(v, id)) > 0 {
			continue
		}
		if _, err := o.delete(ctx, v, im, &res); err != nil {
			return res, err
		}
	}
	used := map[string]bool{}
	for _, im := range v.images {
		for _, l := range im.Layers {
			used[l.ChainID] = true
		}
	}
	all, err := o.n.cfg.Layers.List(ctx)
	if err != nil {
		return res, fmt.Errorf("%w: listing layers: %w", imagedriver.Class(err), err)
	}
	// Children before parents: a chain's layers have more parents the
	// higher they sit.
	slices.SortFunc(all, func(a, b imagedriver.Layer) int { return cmp.Compare(len(b.Parents), len(a.Parents)) })
	var orphans []string
	for _, l := range all {
		if !used[l.ID] {
			orphans = append(orphans, l.ID)
		}
	}
	for _, id := range orphans {
		removed, reclaimed, err := o.removeLayers(ctx, []string{id})
		if err != nil {
			return res, err
		}
		res.Layers += len(removed)
		res.Reclaimed += reclaimed
	}
	return res, nil
}

func (o *imageOp) load(ctx context.Context) (any, error) {
	loader, ok := o.n.cfg.Images.(ImageLoader)
	if !ok {
		return nil, fmt.Errorf("%w: this agent's puller cannot load archives", events.ErrUnavailable)
	}
	var imgs []imagedriver.Image
	err := o.n.hostCall(ctx, "image.load", func() (err error) {
		imgs, err = loader.Load(ctx, o.cmd.Image.Source, o.n.cfg.Platform, o.n.cfg.Layers)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%w: loading %s: %w", imagedriver.Class(err), o.cmd.Image.Source, err)
	}
	var res events.ImageLoadResult
	for _, img := range imgs {
		ev := pulledEvent(o.n.cfg.Node, o.cmd.ID, img.Ref, img)
		o.facts = append(o.facts, ev)
		res.Images = append(res.Images, imageRecord(ev))
	}
	return res, nil
}

// short is an image id's first 12 hex digits, as docker shows it.
func short(id string) string {
	h := strings.TrimPrefix(id, "sha256:")
	if len(h) > 12 {
		h = h[:12]
	}
	return h
}
