package control_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/berthhq/berth/events"
)

// BenchmarkDo measures a command round trip: the client publishes to the
// inbox stream, the intake submits to the agent, which appends its events
// to the journal, and the reply comes back.
func BenchmarkDo(b *testing.B) {
	h := newHarness(b, hconfig{})
	ctx := context.Background()
	b.ResetTimer()
	for i := range b.N {
		if _, err := h.client.Create(ctx, "c"+strconv.Itoa(i), *spec("img")); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInspect measures a query round trip through the micro service.
func BenchmarkInspect(b *testing.B) {
	h := newHarness(b, hconfig{})
	ctx := context.Background()
	if _, err := h.client.Run(ctx, "web-1", *spec("img")); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if c, err := h.client.Inspect(ctx, "web-1"); err != nil || c.Phase != events.PhaseRunning {
			b.Fatal(c, err)
		}
	}
}
