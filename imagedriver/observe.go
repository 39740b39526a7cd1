package imagedriver

import (
	"context"
	"fmt"
)

// Holdings is what a layer store holds, as reconciliation after a restart
// sees it (DESIGN §7): which scratch layers exist, by container, and which
// layers are complete or leftovers of an import or a removal cut short.
type Holdings struct {
	// Scratches are every container's scratch layer, complete or not (a
	// creation cut short has Complete false).
	Scratches []Scratch `json:"scratches"`
	// Layers are the complete layers.
	Layers []Layer `json:"layers"`
	// Incomplete are the layers without a valid completion marker: never
	// usable, to be removed with LayerStore.Remove.
	Incomplete []Layer `json:"incomplete"`
}

// Observe lists what store holds. It is List and ListScratch, sorted into
// what reconciliation acts on; it changes nothing.
func Observe(ctx context.Context, store LayerStore) (Holdings, error) {
	var h Holdings
	layers, err := store.List(ctx)
	if err != nil {
		return h, fmt.Errorf("listing layers: %w", err)
	}
	for _, l := range layers {
		if l.Complete {
			h.Layers = append(h.Layers, l)
		} else {
			h.Incomplete = append(h.Incomplete, l)
		}
	}
	if h.Scratches, err = store.ListScratch(ctx); err != nil {
		return h, fmt.Errorf("listing scratch layers: %w", err)
	}
	return h, nil
}
