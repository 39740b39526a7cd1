//go:build windows

package main

import (
	"context"
	"fmt"

	"github.com/rs/zerolog"

	"github.com/berthhq/berth/hcsdriver/winhcs"
	"github.com/berthhq/berth/netdriver/winhcn"
)

// openHost opens the Host Compute Service and the Host Compute Network
// service.
func openHost(context.Context, options, zerolog.Logger) (*host, error) {
	network, err := winhcn.New()
	if err != nil {
		return nil, fmt.Errorf("opening the Host Compute Network service: %w", err)
	}
	return &host{
		name:     "hcs",
		describe: "the Host Compute Service (HCS) and Host Compute Network service (HCN)",
		compute:  winhcs.New(),
		network:  network,
		close:    func() {},
	}, nil
}
