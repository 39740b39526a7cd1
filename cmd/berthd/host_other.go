//go:build !windows

package main

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/rs/zerolog"

	"github.com/berthhq/berth/imagedriver"
	"github.com/berthhq/berth/imagedriver/dirlayer"
	"github.com/berthhq/berth/winsim"
)

// simPlatform is the Windows the simulated host stands for: Windows Server
// 2022 (LTSC), so that it pulls the images a real ltsc2022 node pulls.
var simPlatform = imagedriver.Platform{OS: "windows", Architecture: "amd64", OSVersion: "10.0.20348.2227"}

// openHost opens the simulated Windows host kept in DATA-DIR/winsim, and
// the folder layer store in DATA-DIR/layers: off Windows there is no HCS to
// drive.
func openHost(_ context.Context, o options, _ zerolog.Logger) (*host, error) {
	dir := filepath.Join(o.dataDir, "winsim")
	h, err := winsim.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("opening the simulated host: %w", err)
	}
	layers, err := dirlayer.New(filepath.Join(o.dataDir, "layers"))
	if err != nil {
		_ = h.Close()
		return nil, fmt.Errorf("opening the layer store: %w", err)
	}
	return &host{
		name:     "winsim",
		describe: "the simulated Windows host (winsim) in " + dir + ", not on HCS: this is not Windows",
		compute:  h.Compute(),
		network:  h.Network(),
		layers:   layers,
		platform: simPlatform,
		close:    func() { _ = h.Close() },
	}, nil
}
