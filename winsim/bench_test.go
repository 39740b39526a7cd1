package winsim_test

import (
	"context"
	"io"
	"net/netip"
	"strconv"
	"testing"

	"github.com/berthhq/berth/hcsdriver"
	"github.com/berthhq/berth/netdriver"
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

// BenchmarkEndpoint creates and deletes one endpoint on a network that holds
// 200 others, as a busy node's does.
func BenchmarkEndpoint(b *testing.B) {
	for _, tc := range []struct {
		name string
		open func() (*winsim.Host, error)
	}{
		{"memory", func() (*winsim.Host, error) { return winsim.New(), nil }},
		{"directory", func() (*winsim.Host, error) { return winsim.Open(b.TempDir()) }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			h, err := tc.open()
			if err != nil {
				b.Fatal(err)
			}
			defer h.Close()
			ctx, d := context.Background(), h.Network()
			n, err := d.EnsureNetwork(ctx, natNet) // 172.28.0.0/20
			if err != nil {
				b.Fatal(err)
			}
			spec := func(i int) netdriver.EndpointSpec {
				return endpointSpec("berth-c"+strconv.Itoa(i), n, netip.AddrFrom4([4]byte{172, 28, byte(1 + i/250), byte(1 + i%250)}).String())
			}
			for i := range 200 {
				if _, err := d.CreateEndpoint(ctx, spec(i)); err != nil {
					b.Fatal(err)
				}
			}
			for b.Loop() {
				ep, err := d.CreateEndpoint(ctx, spec(200))
				if err != nil {
					b.Fatal(err)
				}
				if err := d.DeleteEndpoint(ctx, ep.ID); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
