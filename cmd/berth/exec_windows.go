//go:build windows

package main

import (
	"context"
	"os"
	"time"

	"golang.org/x/term"

	"github.com/berthhq/berth/control"
)

// watchSize polls the console's size (Windows has no SIGWINCH) and reports
// each change until stop.
func watchSize(ctx context.Context, out *os.File) (<-chan control.ConsoleSize, func()) {
	sizes := make(chan control.ConsoleSize, 1)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		var last control.ConsoleSize
		if w, h, err := term.GetSize(int(out.Fd())); err == nil {
			last = control.ConsoleSize{Width: clampSize(w), Height: clampSize(h)}
		}
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				w, h, err := term.GetSize(int(out.Fd()))
				if err != nil {
					continue
				}
				if sz := (control.ConsoleSize{Width: clampSize(w), Height: clampSize(h)}); sz != last {
					last = sz
					select {
					case sizes <- sz:
					case <-ctx.Done():
						return
					}
				}
			}
		}
	}()
	return sizes, func() { cancel(); <-done }
}
