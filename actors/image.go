package actors

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/berthhq/berth/events"
	"github.com/berthhq/berth/imagedriver"
)

// ImagePuller is what the actors need of a registry puller.
type ImagePuller interface {
	imagedriver.Puller
	// Normalize returns ref fully qualified, as Descriptor.Ref names it
	// ("nanoserver:ltsc2022" is "index.docker.io/library/nanoserver:ltsc2022"),
	// or fails with imagedriver.ErrInvalidReference. It asks no registry.
	Normalize(ref string) (string, error)
}

// ImageLoader reads images from an archive on the node, for image.load. A
// puller that also implements it serves image.load.
type ImageLoader interface {
	// Load imports into store the images of source (a docker save tarball
	// or an OCI image layout folder) that run on platform, and returns them,
	// one per reference they were saved as (Descriptor.Ref, normalized).
	Load(ctx context.Context, source string, platform imagedriver.Platform, store imagedriver.LayerStore) ([]imagedriver.Image, error)
}

// ProgressInterval is the least time between two progress reports of one
// pull (Config.OnPullProgress).
const ProgressInterval = 200 * time.Millisecond

// The image actor owns the node's images: the pulls in flight, one per
// reference, which every request for that reference shares; pull policies;
// and the image verbs. Like the network actor it never blocks: pulls and
// the image verbs run in goroutines it owns, which read the fold through the
// node actor and report back with a message.
//
// Pulls of different references run side by side. A tag, remove, prune or
// load runs alone: it starts once no pull is in flight, and pulls wait for
// it. Between a create's ensure and its scratch_creating, the image is
// leased, so that a remove sees it in use before the fold does.
type imageActor struct {
	n *Node
	*imageState
}

// imageState is the image actor's state. It lives in the Node, so that an
// actor rebuilt after a panic continues with it (the pulls in flight report
// to the rebuilt actor, and answerOrphans answers what the panic dropped).
type imageState struct {
	pulls   map[string]*pullJob     // by normalized reference (the raw one when it does not parse)
	leases  map[string]int          // image id -> creates holding it
	running *exclusiveRun           // the exclusive operation running, nil if none
	pending []any                   // ensureReq and cmdMsg waiting for it to end
	asking  map[*ensureReq]struct{} // every ensure received and not answered yet
}

func newImageState() *imageState {
	return &imageState{pulls: map[string]*pullJob{}, leases: map[string]int{}, asking: map[*ensureReq]struct{}{}}
}

// exclusiveRun is a tag, remove, prune or load running.
type exclusiveRun struct {
	done atomic.Pointer[exclusiveDone] // its outcome, once over
}

// pullJob is one pull in flight and who waits for it.
type pullJob struct {
	ensures  []*ensureReq
	commands []events.Command
	finished atomic.Bool // the pull is over and its pullDone sent
}

// Messages to the image actor.
type (
	// ensureReq asks for the image of ref, pulled according to policy.
	// The reply holds a lease on the image, which the asker returns with
	// releaseImage once its scratch_creating is durable (or it gave up).
	ensureReq struct {
		ref, policy string
		auth        *events.RegistryAuth
		reply       chan result[events.Image]
	}
	releaseImage struct{ id string }
	pullDone     struct {
		key    string
		img    events.Image
		pulled bool
		err    error
	}
	exclusiveDone struct{ answer *answer }
)

// imagesReq asks the node actor for its image table and who uses each image.
type imagesReq struct{ reply chan result[imageView] }

type imageView struct {
	images map[string]*events.Image
	users  map[string][]string // image id -> containers
}

// byRef finds the image ref names: a reference (normalized) or an image
// id, whole or as 12 or more of its first hex digits.
func (v imageView) byRef(ref, normalized string) (*events.Image, error) {
	for _, im := range v.images {
		if slices.Contains(im.Refs, normalized) || im.ID == ref {
			return im, nil
		}
	}
	hex := strings.TrimPrefix(ref, "sha256:")
	if len(hex) >= 12 && strings.Trim(hex, "0123456789abcdef") == "" {
		var found *events.Image
		for _, im := range v.images {
			if strings.HasPrefix(im.ID, "sha256:"+hex) {
				if found != nil {
					return nil, fmt.Errorf("%w: image id prefix %s names more than one image", events.ErrInvalid, hex)
				}
				found = im
			}
		}
		if found != nil {
			return found, nil
		}
	}
	return nil, fmt.Errorf("%w: image %s is not on the node", events.ErrNotFound, ref)
}

func (n *Node) imagesOn() bool { return n.cfg.Images != nil && n.cfg.Layers != nil }

func (a *imageActor) Receive(ctx actor.Context) {
	if m, ok := ctx.Message().(*ensureReq); ok {
		a.asking[m] = struct{}{} // first, so that a panic cannot lose it
	}
	if hook := receiveHook.Load(); hook != nil {
		(*hook)("", ctx.Message())
	}
	switch m := ctx.Message().(type) {
	case *actor.Started:
		a.answerOrphans(ctx)
	case *ensureReq:
		a.ensure(ctx, m)
	case *cmdMsg:
		a.command(ctx, m.cmd)
	case *releaseImage:
		if a.leases[m.id]--; a.leases[m.id] <= 0 {
			delete(a.leases, m.id)
		}
	case *pullDone:
		a.pullDone(ctx, m)
	case *exclusiveDone:
		if a.running == nil || a.running.done.Load() != m {
			return // answered by answerOrphans
		}
		a.endExclusive(ctx, m)
		a.drain(ctx)
	}
}

func (a *imageActor) ensure(ctx actor.Context, m *ensureReq) {
	if a.running != nil {
		a.pending = append(a.pending, m)
		return
	}
	if job := a.pulls[a.key(m.ref)]; job != nil {
		job.ensures = append(job.ensures, m)
		return
	}
	job := &pullJob{ensures: []*ensureReq{m}}
	a.startPull(ctx, m.ref, m.policy, m.auth, job)
}

func (a *imageActor) command(ctx actor.Context, cmd events.Command) {
	if a.running != nil || (cmd.Verb != events.VerbImagePull && len(a.pulls) > 0) {
		a.pending = append(a.pending, &cmdMsg{cmd: cmd})
		return
	}
	if cmd.Verb == events.VerbImagePull {
		if job := a.pulls[a.key(cmd.Image.Ref)]; job != nil {
			job.commands = append(job.commands, cmd)
			return
		}
		policy := cmd.Image.PullPolicy
		if policy == "" {
			policy = events.PullAlways
		}
		a.startPull(ctx, cmd.Image.Ref, policy, cmd.Auth, &pullJob{commands: []events.Command{cmd}})
		return
	}
	run := &exclusiveRun{}
	a.running = run
	leases := make(map[string]int, len(a.leases))
	for id, c := range a.leases {
		leases[id] = c
	}
	n, self := a.n, ctx.Self()
	n.goOwned(func() {
		op := imageOp{n: n, cmd: cmd, leases: leases}
		done := &exclusiveDone{answer: op.run(n.ctx)}
		run.done.Store(done)
		n.sys.Root.Send(self, done)
	})
}

// key is the reference a pull is known by.
func (a *imageActor) key(ref string) string {
	if norm, err := a.n.cfg.Images.Normalize(ref); err == nil {
		return norm
	}
	return ref
}

func (a *imageActor) startPull(ctx actor.Context, ref, policy string, auth *events.RegistryAuth, job *pullJob) {
	key := a.key(ref)
	a.pulls[key] = job
	n, self := a.n, ctx.Self()
	n.goOwned(func() {
		img, pulled, err := n.pull(n.ctx, ref, policy, auth)
		job.finished.Store(true)
		n.sys.Root.Send(self, &pullDone{key: key, img: img, pulled: pulled, err: err})
	})
}

func (a *imageActor) pullDone(ctx actor.Context, m *pullDone) {
	job := a.pulls[m.key]
	delete(a.pulls, m.key)
	if job == nil {
		return
	}
	for _, w := range job.ensures {
		if a.reply(w, result[events.Image]{v: m.img, err: m.err}) && m.err == nil {
			a.leases[m.img.ID]++
		}
	}
	if len(job.commands) > 0 {
		n, cmds := a.n, job.commands
		res := events.ImageResult{Image: m.img, Pulled: m.pulled}
		n.goOwned(func() {
			batch := make([]events.Event, len(cmds))
			for i, cmd := range cmds {
				batch[i] = completed(n.cfg.Node, cmd, res, m.err)
			}
			_, err := n.cfg.Journal.Append(n.ctx, batch...)
			for i, cmd := range cmds {
				reply := batchReply(batch[i])
				if err != nil {
					reply = events.NewReply(cmd.ID, nil, journalErr(err))
				}
				n.sys.Root.Send(n.pid, &answer{id: cmd.ID, reply: reply})
			}
		})
	}
	a.drain(ctx)
}

// reply gives the ensure w its one answer, and reports false if it had it
// already.
func (a *imageActor) reply(w *ensureReq, r result[events.Image]) bool {
	if _, ok := a.asking[w]; !ok {
		return false
	}
	delete(a.asking, w)
	w.reply <- r
	return true
}

// answerOrphans runs as the actor starts, which after the first start
// means that a panic rebuilt it. The panic may have cut a Receive short and
// dropped what it held: the ensure it handled, a finished pull with its
// waiters, a finished exclusive operation, requests being drained. Every
// ensure the state no longer holds, and every waiter of a pull whose
// outcome may be lost, gets a 503 naming its image, so that no create
// waits until the agent stops; waiters of pulls still running keep waiting
// for them. A finished exclusive operation is answered as its outcome
// says, and the requests behind it go on.
func (a *imageActor) answerOrphans(ctx actor.Context) {
	for key, job := range a.pulls {
		if !job.finished.Load() {
			continue
		}
		delete(a.pulls, key) // a pullDone still queued finds no job
		for _, w := range job.ensures {
			a.reply(w, result[events.Image]{err: interrupted(w.ref)})
		}
		for _, cmd := range job.commands {
			ctx.Send(ctx.Parent(), &answer{id: cmd.ID, reply: events.NewReply(cmd.ID, nil, interrupted(cmd.Image.Ref))})
		}
	}
	held := map[*ensureReq]bool{}
	for _, job := range a.pulls {
		for _, w := range job.ensures {
			held[w] = true
		}
	}
	for _, p := range a.pending {
		if w, ok := p.(*ensureReq); ok {
			held[w] = true
		}
	}
	for w := range a.asking {
		if !held[w] {
			a.reply(w, result[events.Image]{err: interrupted(w.ref)})
		}
	}
	if a.running != nil {
		if d := a.running.done.Load(); d != nil {
			a.endExclusive(ctx, d) // its exclusiveDone may be lost
		}
	}
	if a.running == nil {
		a.drain(ctx)
	}
}

// endExclusive ends the exclusive operation whose outcome is d.
func (a *imageActor) endExclusive(ctx actor.Context, d *exclusiveDone) {
	a.running = nil
	if d.answer != nil {
		ctx.Send(ctx.Parent(), d.answer)
	}
}

// interrupted is the error of a request for the image ref that a panic of
// the image actor cut short.
func interrupted(ref string) error {
	return fmt.Errorf("%w: image %s: the image actor panicked while this request waited; try again", events.ErrUnavailable, ref)
}

// drain restarts the requests that waited for an exclusive operation.
func (a *imageActor) drain(ctx actor.Context) {
	pending := a.pending
	a.pending = nil
	for _, m := range pending {
		switch m := m.(type) {
		case *ensureReq:
			a.ensure(ctx, m)
		case *cmdMsg:
			a.command(ctx, m.cmd)
		}
	}
}

func batchReply(e events.Event) events.Reply {
	var d events.CommandCompletedData
	_ = e.Decode(&d) // encoded by completed
	return d.Reply
}

// pull decides by policy whether ref must be pulled, pulls it, and records
// image.pulled or image.pull_failed. It returns the image and whether it
// fetched it.
func (n *Node) pull(ctx context.Context, ref, policy string, auth *events.RegistryAuth) (events.Image, bool, error) {
	norm, err := n.cfg.Images.Normalize(ref)
	if err != nil {
		return events.Image{}, false, n.pullFailed(ctx, ref, fmt.Errorf("%w: image %q: %w", imagedriver.Class(err), ref, err))
	}
	view, err := n.images(ctx)
	if err != nil {
		return events.Image{}, false, err
	}
	local, _ := view.byRef(norm, norm)
	present := local != nil && n.complete(ctx, local)
	switch policy {
	case events.PullNever:
		if !present {
			return events.Image{}, false, n.pullFailed(ctx, ref, fmt.Errorf("%w: image %s is not on the node and the pull policy is never", events.ErrNotFound, ref))
		}
		return *local, false, nil
	case "", events.PullIfNotPresent:
		if present {
			return *local, false, nil
		}
	case events.PullNewer:
		if present {
			d, err := n.cfg.Images.Resolve(ctx, ref, n.cfg.Platform, credentials(auth))
			if err != nil {
				n.cfg.Logger.Warn().Err(err).Str("image", ref).Msg("registry not asked for a newer image; using the node's")
				return *local, false, nil
			}
			if d.Digest == local.ID {
				return *local, false, nil
			}
		}
	}
	opts := imagedriver.PullOptions{Auth: credentials(auth), ProgressInterval: ProgressInterval}
	if f := n.cfg.OnPullProgress; f != nil {
		opts.Progress = func(u imagedriver.ProgressUpdate) { f(norm, u) }
	}
	var img imagedriver.Image
	err = n.hostCall(ctx, "image.pull", func() (err error) {
		img, err = n.cfg.Images.Pull(ctx, ref, n.cfg.Platform, n.cfg.Layers, opts)
		return err
	})
	if err != nil {
		return events.Image{}, false, n.pullFailed(ctx, ref, fmt.Errorf("%w: %w", imagedriver.Class(err), err))
	}
	ev := pulledEvent(n.cfg.Node, "", norm, img)
	evs, err := n.cfg.Journal.Append(ctx, ev)
	if err != nil {
		return events.Image{}, false, journalErr(err)
	}
	return imageRecord(evs[0]), true, nil
}

// complete reports whether every layer of im is complete in the store.
func (n *Node) complete(ctx context.Context, im *events.Image) bool {
	if len(im.Layers) == 0 {
		return true
	}
	ok, err := n.cfg.Layers.Has(ctx, im.Layers[len(im.Layers)-1].ChainID)
	return ok && err == nil
}

// pullFailed records image.pull_failed for ref and returns err.
func (n *Node) pullFailed(ctx context.Context, ref string, err error) error {
	code, _ := events.CodeOf(err)
	ev := events.NewEvent(n.cfg.Node, events.ImagePullFailed, events.RefToken(ref), "",
		events.ImagePullFailedData{Ref: ref, Error: err.Error(), Code: code})
	if _, aerr := n.cfg.Journal.Append(ctx, ev); aerr != nil {
		n.cfg.Logger.Warn().Err(aerr).Str("image", ref).Msg("image.pull_failed not recorded")
	}
	return err
}

func credentials(a *events.RegistryAuth) *imagedriver.Credentials {
	if a == nil {
		return nil
	}
	return &imagedriver.Credentials{Username: a.Username, Password: a.Password, IdentityToken: a.IdentityToken, RegistryToken: a.RegistryToken}
}

// pulledEvent builds image.pulled for img, named ref.
func pulledEvent(node, cmd, ref string, img imagedriver.Image) events.Event {
	d := events.ImagePulledData{Ref: ref, IndexDigest: img.IndexDigest, Platform: img.Platform.String(), Size: img.Size,
		Config: events.ImageConfig{Entrypoint: img.Config.Entrypoint, Cmd: img.Config.Cmd, Env: img.Config.Env,
			WorkingDir: img.Config.WorkingDir, User: img.Config.User}}
	for _, l := range img.Layers {
		d.Layers = append(d.Layers, events.ImageLayer{Digest: l.Digest, DiffID: l.DiffID, ChainID: l.ChainID, Size: l.Size})
	}
	return events.NewEvent(node, events.ImagePulled, img.Digest, cmd, d)
}

// imageRecord is what the fold makes of a durable image.pulled, for replies.
func imageRecord(e events.Event) events.Image {
	st := events.NewState("", events.Window{})
	_ = st.Apply(&e) // built by pulledEvent
	if im := st.Images[e.Subject]; im != nil {
		return *im
	}
	return events.Image{ID: e.Subject}
}

// images asks the node actor for its image table.
func (n *Node) images(ctx context.Context) (imageView, error) {
	return ask[imageView](ctx, n, func(c chan result[imageView]) any { return &imagesReq{reply: c} })
}

// viewOf builds the image view of the fold st.
func viewOf(st *events.State) imageView {
	v := imageView{images: make(map[string]*events.Image, len(st.Images)), users: map[string][]string{}}
	for _, s := range st.ImageList() {
		im := s.Image
		v.images[im.ID], v.users[im.ID] = &im, s.Containers
	}
	return v
}

// ensureImage returns the image of spec, pulled by its policy, leased to
// the caller until it calls releaseImage.
func (n *Node) ensureImage(ctx context.Context, spec events.ImageSpec, auth *events.RegistryAuth) (events.Image, error) {
	pid := n.imgPID.Load()
	if pid == nil {
		return events.Image{}, fmt.Errorf("%w: images are off on this agent", events.ErrUnavailable)
	}
	reply := make(chan result[events.Image], 1)
	n.sys.Root.Send(pid, &ensureReq{ref: spec.Ref, policy: spec.PullPolicy, auth: auth, reply: reply})
	select {
	case r := <-reply:
		return r.v, r.err
	case <-ctx.Done():
		// Only the agent's shutdown ends ctx, and the leases end with it.
		return events.Image{}, fmt.Errorf("%w: waiting for image %s: %v", events.ErrUnavailable, spec.Ref, ctx.Err())
	}
}

func (n *Node) releaseImage(id string) {
	if pid := n.imgPID.Load(); pid != nil {
		n.sys.Root.Send(pid, &releaseImage{id: id})
	}
}
