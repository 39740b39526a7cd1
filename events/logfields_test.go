package events_test

import (
	"testing"

	"github.com/berthhq/berth/events"
)

func TestSpanName(t *testing.T) {
	for verb, want := range map[string]string{
		events.VerbCreate: "container.create", events.VerbStart: "container.start", events.VerbStop: "container.stop",
		events.VerbRemove: "container.remove", events.VerbImagePull: "image.pull", events.VerbRun: "container.run",
		events.VerbNetworkConfigure: "network.configure", "image.explode": "", "": "",
	} {
		if got := events.SpanName(verb); got != want {
			t.Errorf("SpanName(%q) = %q, want %q", verb, got, want)
		}
	}
}
