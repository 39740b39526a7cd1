package control

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/berthhq/berth/events"
)

// EndpointImages names the images query.
const EndpointImages = "images"

// ImagesResult answers an images query.
type ImagesResult struct {
	Images []events.ImageSummary `json:"images"`
}

func (s *Server) images(ctx context.Context, data []byte) (any, error) {
	if err := decodeQuery(data, &struct{}{}); err != nil {
		return nil, err
	}
	st, err := s.opts.Agent.State(ctx)
	if err != nil {
		return nil, fmt.Errorf("node state: %w", err)
	}
	return ImagesResult{Images: st.ImageList()}, nil
}

// Images lists the node's images with the containers that use them.
func (c *Client) Images(ctx context.Context) ([]events.ImageSummary, error) {
	var res ImagesResult
	if err := c.query(ctx, EndpointImages, nil, &res); err != nil {
		return nil, err
	}
	return res.Images, nil
}

// Pull pulls ref onto the node with an image.pull command: policy "" (or
// always) asks the registry every time, newer when the registry has
// another digest, if_not_present only when the node lacks it. auth, when
// not nil, authenticates this pull only; the agent never logs nor records
// it. Progress is published while it runs (see [Client.WatchPull]).
func (c *Client) Pull(ctx context.Context, ref, policy string, auth *events.RegistryAuth) (events.ImageResult, error) {
	return send[events.ImageResult](ctx, c, events.Command{Verb: events.VerbImagePull,
		Image: &events.ImageCommand{Ref: ref, PullPolicy: policy}, Auth: auth})
}

// Tag gives the image ref (a reference or an image id) the name target.
func (c *Client) Tag(ctx context.Context, ref, target string) (events.ImageResult, error) {
	return send[events.ImageResult](ctx, c, events.Command{Verb: events.VerbImageTag, Image: &events.ImageCommand{Ref: ref, Target: target}})
}

// RemoveImage removes a name of an image, or the image when it is its last
// name or ref is its id. An image a container uses is refused with
// events.ErrConflict unless force, which takes the image's names away and
// leaves its layers to the containers (see events.ImageRemoveResult).
func (c *Client) RemoveImage(ctx context.Context, ref string, force bool) (events.ImageRemoveResult, error) {
	return send[events.ImageRemoveResult](ctx, c, events.Command{Verb: events.VerbImageRemove, Image: &events.ImageCommand{Ref: ref}, Force: force})
}

// Prune removes the images without a name (with all, every image) that no
// container uses, and the layers no image uses, and reports the space
// reclaimed.
func (c *Client) Prune(ctx context.Context, all bool) (events.ImageRemoveResult, error) {
	return send[events.ImageRemoveResult](ctx, c, events.Command{Verb: events.VerbImagePrune, Image: &events.ImageCommand{All: all}})
}

// Load imports the images of source, a docker save tarball or an OCI image
// layout folder: a path on the node, which the agent reads.
func (c *Client) Load(ctx context.Context, source string) (events.ImageLoadResult, error) {
	return send[events.ImageLoadResult](ctx, c, events.Command{Verb: events.VerbImageLoad, Image: &events.ImageCommand{Source: source}})
}

// WatchPull calls fn with each progress message of the pulls of ref, a
// normalized reference as the agent names it ("index.docker.io/library/
// nanoserver:ltsc2022"), until stop is called. Messages come at most every
// 200 ms per pull; they are not persisted, so only a watch started before
// the pull sees them all. fn runs on the subscription's own goroutine; stop
// returns once fn has seen every message that arrived before it.
func (c *Client) WatchPull(ref string, fn func(events.ImageProgress)) (stop func(), err error) {
	sub, err := c.nc.Subscribe(c.subj.Progress(events.KindImage, events.RefToken(ref)), func(m *nats.Msg) {
		var p events.ImageProgress
		if json.Unmarshal(m.Data, &p) == nil {
			fn(p)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("progress subscription: %w", err)
	}
	// Stopping drains: the messages that arrived before, such as those
	// published before a pull's reply, still reach fn.
	closed := sub.StatusChanged(nats.SubscriptionClosed)
	return func() {
		if sub.Drain() != nil {
			return
		}
		select {
		case <-closed:
		case <-time.After(c.timeout):
		}
	}, nil
}
