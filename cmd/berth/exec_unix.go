//go:build !windows

package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/term"

	"github.com/berthhq/berth/control"
)

// watchSize reports the terminal's new size on every SIGWINCH until stop.
func watchSize(ctx context.Context, out *os.File) (<-chan control.ConsoleSize, func()) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGWINCH)
	sizes := make(chan control.ConsoleSize, 1)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-sig:
				if w, h, err := term.GetSize(int(out.Fd())); err == nil {
					select {
					case sizes <- control.ConsoleSize{Width: clampSize(w), Height: clampSize(h)}:
					case <-ctx.Done():
						return
					}
				}
			}
		}
	}()
	return sizes, func() { signal.Stop(sig); cancel(); <-done }
}
