package registry

import (
	"slices"
	"sync"
	"time"

	"github.com/berthhq/berth/imagedriver"
)

// progress keeps a pull's layer states and reports them to the caller's
// callback, at most once per interval, one call at a time.
type progress struct {
	ref      string
	fn       func(imagedriver.ProgressUpdate)
	interval time.Duration

	mu     sync.Mutex // guards the fields below, and serialises calls of fn
	layers []imagedriver.LayerProgress
	last   time.Time // of the last call of fn
}

func newProgress(ref string, layers []imagedriver.LayerInfo, opts imagedriver.PullOptions) *progress {
	p := &progress{ref: ref, fn: opts.Progress, interval: opts.ProgressInterval}
	for _, l := range layers {
		p.layers = append(p.layers, imagedriver.LayerProgress{Digest: l.Digest, Total: l.Size, State: imagedriver.LayerWaiting})
	}
	return p
}

// set records layer i's bytes and state, and reports when the interval
// allows.
func (p *progress) set(i int, current int64, state imagedriver.LayerState) {
	if p.fn == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.layers[i].Current, p.layers[i].State = current, state
	if now := time.Now(); p.last.IsZero() || now.Sub(p.last) >= p.interval {
		p.last = now
		p.report()
	}
}

// finish reports the final state, whatever the interval.
func (p *progress) finish() {
	if p.fn == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.report()
}

// report calls fn with a copy of the state. Call with p.mu held.
func (p *progress) report() {
	p.fn(imagedriver.ProgressUpdate{Ref: p.ref, Layers: slices.Clone(p.layers)})
}
