package winsim_test

import (
	"context"
	"io"
	"strconv"
	"testing"

	"github.com/berthhq/berth/hcsdriver"
	"github.com/berthhq/berth/winsim"
)

// lifecycle creates, starts, runs "cmd /c echo hi" in, terminates and
// removes one compute system.
func lifecycle(b *testing.B, d hcsdriver.Driver, id string) {
	ctx := context.Background()
	s, err := d.Create(ctx, id, hcsdriver.Config{Owner: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Start(ctx); err != nil {
		b.Fatal(err)
	}
	p, err := s.CreateProcess(ctx, hcsdriver.ProcessConfig{CommandLine: "cmd /c echo hi", Stdout: true})
	if err != nil {
		b.Fatal(err)
	}
	_, out, _, err := p.Stdio()
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, out); err != nil {
		b.Fatal(err)
	}
	if err := p.Wait(ctx); err != nil {
		b.Fatal(err)
	}
	p.Close()
	if err := s.Terminate(ctx); err != nil {
		b.Fatal(err)
	}
	if err := s.Wait(ctx); err != nil {
		b.Fatal(err)
	}
	s.Close()
}

func BenchmarkLifecycle(b *testing.B) {
	b.Run("memory", func(b *testing.B) {
		h := winsim.New()
		defer h.Close()
		d := h.Compute()
		for i := 0; b.Loop(); i++ {
			lifecycle(b, d, "c"+strconv.Itoa(i))
		}
	})
	b.Run("directory", func(b *testing.B) {
		h, err := winsim.Open(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		defer h.Close()
		d := h.Compute()
		for i := 0; b.Loop(); i++ {
			lifecycle(b, d, "c"+strconv.Itoa(i))
		}
	})
}
