//go:build windows

package main

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/rs/zerolog"

	"github.com/berthhq/berth/hcsdriver/winhcs"
	"github.com/berthhq/berth/imagedriver/wclayer"
	"github.com/berthhq/berth/netdriver/winhcn"
)

// openHost opens the Host Compute Service, the Host Compute Network
// service and the Windows layer store in DATA-DIR/layers.
func openHost(_ context.Context, o options, _ zerolog.Logger) (*host, error) {
	network, err := winhcn.New()
	if err != nil {
		return nil, fmt.Errorf("opening the Host Compute Network service: %w", err)
	}
	layers, err := wclayer.New(filepath.Join(o.dataDir, "layers"))
	if err != nil {
		return nil, fmt.Errorf("opening the layer store: %w", err)
	}
	local := wclayer.LocalHost()
	return &host{
		name:     "hcs",
		describe: "the Host Compute Service (HCS) and Host Compute Network service (HCN)",
		compute:  winhcs.New(),
		network:  network,
		layers:   layers,
		platform: local.Platform,
		client:   local.Client,
		close:    func() {},
	}, nil
}
