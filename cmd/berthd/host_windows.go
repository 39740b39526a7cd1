//go:build windows

package main

import (
	"context"

	"github.com/rs/zerolog"

	"github.com/berthhq/berth/hcsdriver/winhcs"
)

// openHost opens the Host Compute Service.
func openHost(context.Context, options, zerolog.Logger) (*host, error) {
	return &host{
		name:     "hcs",
		describe: "the Host Compute Service (HCS)",
		compute:  winhcs.New(),
		close:    func() {},
	}, nil
}
