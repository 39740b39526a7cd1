package actors_test

import (
	"context"
	"strings"
	"testing"

	"github.com/berthhq/berth/actors"
	"github.com/berthhq/berth/events"
	"github.com/berthhq/berth/imagedriver/registry/registrytest"
)

// TestImage_Isolation: a container runs with process isolation on a server
// and Hyper-V isolation on a client edition unless its spec says otherwise;
// the choice is recorded in its spec; a Hyper-V container's scratch is not
// mounted on the host; an image the host's kernel cannot run with process
// isolation is refused with 400, naming the field and the way out, and
// leaves nothing behind.
func TestImage_Isolation(t *testing.T) {
	server := startImageAgent(t)
	client := startImageAgent(t, func(c *actors.Config) { c.ClientEdition = true })
	push := func(h *imageHost, build string) string {
		img, err := registrytest.Image(build, echoConfig, layer(t, "base.txt", build))
		if err != nil {
			t.Fatal(err)
		}
		ref, err := h.reg.Push("app:"+strings.ReplaceAll(build, ".", "-"), img)
		if err != nil {
			t.Fatal(err)
		}
		return ref
	}
	create := func(h *imageHost, id, ref, isolation string) events.Command {
		return events.Command{Verb: events.VerbCreate, Container: id,
			Spec: &events.ContainerSpec{Image: events.ImageSpec{Ref: ref}, Isolation: isolation}}
	}
	for _, tc := range []struct {
		name      string
		h         *imageHost
		build     string
		requested string
		want      string
	}{
		{"server default", server, "10.0.20348.2227", "", "process"},
		{"server asks for Hyper-V", server, "10.0.20348.2227", "hyperv", "hyperv"},
		{"older image with Hyper-V", server, "10.0.17763.1", "hyperv", "hyperv"},
		{"client default", client, "10.0.20348.2227", "", "hyperv"},
		{"client asks for process", client, "10.0.20348.2227", "process", "process"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := "iso-" + strings.ReplaceAll(strings.ToLower(tc.name), " ", "-")
			tc.h.ok(create(tc.h, id, push(tc.h, tc.build), tc.requested))
			c, err := tc.h.node.Inspect(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			cfg := hostConfig(t, tc.h.host, id)
			if c.Spec.Isolation != tc.want || cfg.HyperV != (tc.want == "hyperv") {
				t.Errorf("isolation %q, compute config hyperv=%v; want %s", c.Spec.Isolation, cfg.HyperV, tc.want)
			}
			if mounted := c.Scratch.VolumePath != ""; mounted != (tc.want == "process") || cfg.VolumePath != c.Scratch.VolumePath {
				t.Errorf("scratch volume %q, compute config volume %q; want one only for process isolation", c.Scratch.VolumePath, cfg.VolumePath)
			}
			if cfg.LayerFolderPath != c.Scratch.Path {
				t.Errorf("layer folder %q, want the scratch %q", cfg.LayerFolderPath, c.Scratch.Path)
			}
			tc.h.ok(verb(events.VerbRemove, id))
		})
	}

	e := server.refused(create(server, "iso-old", push(server, "10.0.17763.1"), ""), events.ErrInvalid)
	for _, want := range []string{"spec.isolation", "10.0.17763", "10.0.20348", "use isolation hyperv"} {
		if !strings.Contains(e.Message, want) {
			t.Errorf("refusal %q does not say %q", e.Message, want)
		}
	}
	if _, err := server.node.Inspect(context.Background(), "iso-old"); err == nil {
		t.Error("a refused create left a container")
	}
	if sc, _ := server.store.ListScratch(context.Background()); len(sc) != 0 {
		t.Errorf("scratch layers left: %+v", sc)
	}
}
