//go:build !windows

package main

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/rs/zerolog"

	"github.com/berthhq/berth/winsim"
)

// openHost opens the simulated Windows host kept in DATA-DIR/winsim: off
// Windows there is no HCS to drive.
func openHost(_ context.Context, o options, _ zerolog.Logger) (*host, error) {
	dir := filepath.Join(o.dataDir, "winsim")
	h, err := winsim.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("opening the simulated host: %w", err)
	}
	return &host{
		name:     "winsim",
		describe: "the simulated Windows host (winsim) in " + dir + ", not on HCS: this is not Windows",
		compute:  h.Compute(),
		network:  h.Network(),
		close:    func() { _ = h.Close() },
	}, nil
}
