//go:build windows

package main

import (
	"context"
	"errors"

	"github.com/rs/zerolog"
)

// openHost opens the host compute service. The HCS adapter is not part of
// this build yet, so berthd refuses to start on Windows rather than run on a
// simulated host where real containers are expected.
func openHost(context.Context, options, zerolog.Logger) (*host, error) {
	return nil, errors.New("this build of berthd has no HCS driver; on Windows it cannot run containers yet")
}
