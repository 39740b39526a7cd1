package events_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/berthhq/berth/events"
)

func digest(n int) string { return fmt.Sprintf("sha256:%064x", n) }

func pulled(ref string, layers ...int) events.ImagePulledData {
	d := events.ImagePulledData{Ref: ref, Platform: "windows/amd64:10.0.20348.2227",
		Config: events.ImageConfig{Cmd: []string{"cmd"}, Env: []string{"PATH=C:\\Windows"}}}
	for _, l := range layers {
		d.Layers = append(d.Layers, events.ImageLayer{Digest: digest(l + 100), DiffID: digest(l), ChainID: digest(l + 200), Size: 10})
		d.Size += 10
	}
	return d
}

// TestApply_Images folds image events one after the other and checks the
// image table after each: a pull names an image, a second pull of the same
// reference moves the name, a tag adds one, a remove takes names away or
// deletes the image, and refused events change nothing.
func TestApply_Images(t *testing.T) {
	a, b := digest(1), digest(2)
	const web, web2 = "example.com/web:1", "example.com/web:2"
	steps := []struct {
		name    string
		e       *events.Event
		wantErr error
		want    map[string][]string // image id -> refs
	}{
		{"pull a", event(events.ImagePulled, a, 1, pulled(web, 1, 2)), nil, map[string][]string{a: {web}}},
		{"tag a", event(events.ImageTagged, a, 2, events.ImageRefData{Ref: web2}), nil, map[string][]string{a: {web, web2}}},
		{"tag again is a no-op", event(events.ImageTagged, a, 3, events.ImageRefData{Ref: web2}), nil, map[string][]string{a: {web, web2}}},
		{"pull b moves web", event(events.ImagePulled, b, 4, pulled(web, 1, 3)), nil, map[string][]string{a: {web2}, b: {web}}},
		{"tag unknown image", event(events.ImageTagged, digest(9), 5, events.ImageRefData{Ref: "x:1"}), events.ErrWrongPhase, nil},
		{"tag with a bad ref", event(events.ImageTagged, a, 6, events.ImageRefData{Ref: "a b"}), events.ErrInvalid, nil},
		{"pull with a bad ref", event(events.ImagePulled, a, 7, pulled("a\nb")), events.ErrInvalid, nil},
		{"subject is no digest", event(events.ImagePulled, "web", 8, pulled(web)), events.ErrInvalid, nil},
		{"untag a", event(events.ImageRemoved, a, 9, events.ImageRemovedData{Refs: []string{web2}}), nil, map[string][]string{a: {}, b: {web}}},
		{"delete a", event(events.ImageRemoved, a, 10, events.ImageRemovedData{Refs: []string{}, Deleted: true}), nil, map[string][]string{b: {web}}},
		{"delete a twice", event(events.ImageRemoved, a, 11, events.ImageRemovedData{Deleted: true}), events.ErrWrongPhase, nil},
		{"pull failed keeps nothing", event(events.ImagePullFailed, events.RefToken("nope:1"), 12,
			events.ImagePullFailedData{Ref: "nope:1", Error: "not found", Code: 404}), nil, map[string][]string{b: {web}}},
		{"an unnamed image", event(events.ImagePulled, digest(3), 14, pulled("", 1)), nil, map[string][]string{b: {web}, digest(3): {}}},
		{"bad payload", &events.Event{Type: events.ImageTagged, Subject: b, Seq: 13, Data: json.RawMessage(`{"ref":1}`)}, events.ErrInvalid, nil},
	}
	s := events.NewState(testNode, events.DefaultWindow)
	for _, st := range steps {
		before := s.Clone()
		err := s.Apply(st.e)
		if st.wantErr != nil {
			if !errors.Is(err, st.wantErr) {
				t.Fatalf("%s: Apply = %v, want %v", st.name, err, st.wantErr)
			}
			if diff := cmp.Diff(before, s, ignoreIndex); diff != "" {
				t.Fatalf("%s: a refused event changed the state:\n%s", st.name, diff)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: Apply = %v", st.name, err)
		}
		got := map[string][]string{}
		for id, im := range s.Images {
			got[id] = append([]string{}, im.Refs...)
		}
		if diff := cmp.Diff(st.want, got); diff != "" {
			t.Fatalf("%s: images (-want +got):\n%s", st.name, diff)
		}
	}
	if im := s.ImageByRef(web); im == nil || im.ID != b || len(im.Layers) != 2 || im.Layers[1].ChainID != digest(203) ||
		im.Size != 20 || im.Config.Cmd[0] != "cmd" || !im.PulledAt.Equal(t0.Add(4e9)) || im.Seq != 4 {
		t.Fatalf("ImageByRef(%s) = %+v", web, im)
	}
	if im := s.ImageByRef(web2); im != nil {
		t.Fatalf("ImageByRef(%s) = %+v, want nil", web2, im)
	}
}

// TestApply_Scratch follows a container created from an image through its
// scratch layer's events, and checks the rules that bind a record to its
// scratch layer.
func TestApply_Scratch(t *testing.T) {
	img := digest(1)
	spec := events.ContainerSpec{Image: events.ImageSpec{Ref: "example.com/web:1"}}
	steps := []struct {
		e       *events.Event
		wantErr error
		check   func(c *events.Container) bool
	}{
		{e: event(events.ImagePulled, img, 1, pulled("example.com/web:1", 1))},
		{e: event(events.ContainerScratchCreating, ctr, 2, events.ScratchCreatingData{Image: img, Parents: []string{digest(201)}}), wantErr: events.ErrWrongPhase},
		{e: event(events.ContainerCreating, ctr, 3, events.CreatingData{Spec: spec, Owner: "berth"})},
		{e: event(events.ContainerScratchCreated, ctr, 4, events.ScratchCreatedData{Path: "/s"}), wantErr: events.ErrWrongPhase},
		{e: event(events.ContainerScratchCreating, ctr, 5, events.ScratchCreatingData{Image: "web", Parents: nil}), wantErr: events.ErrInvalid},
		{e: event(events.ContainerScratchCreating, ctr, 6, events.ScratchCreatingData{Image: img, Parents: []string{digest(201)}}),
			check: func(c *events.Container) bool {
				return c.Image == img && c.Scratch != nil && c.Scratch.Path == "" && c.Intent == events.ContainerScratchCreating
			}},
		{e: event(events.ContainerCreated, ctr, 7, events.CreatedData{HostID: "h"}), wantErr: events.ErrWrongPhase},
		{e: event(events.ContainerScratchCreated, ctr, 8, events.ScratchCreatedData{Path: "/s", VolumePath: "/s"}),
			check: func(c *events.Container) bool {
				return c.Scratch.Path == "/s" && c.Scratch.VolumePath == "/s" && c.Intent == events.ContainerCreating
			}},
		{e: event(events.ContainerScratchCreating, ctr, 9, events.ScratchCreatingData{Image: img}), wantErr: events.ErrWrongPhase},
		{e: event(events.ContainerCreated, ctr, 10, events.CreatedData{HostID: "h"}),
			check: func(c *events.Container) bool { return c.Phase == events.PhaseCreated && c.Scratch.Path == "/s" }},
		{e: event(events.ImageRemoved, img, 11, events.ImageRemovedData{Deleted: true}), wantErr: events.ErrWrongPhase},
		{e: event(events.ImageRemoved, img, 12, events.ImageRemovedData{Refs: []string{"example.com/web:1"}}),
			check: func(c *events.Container) bool { return c.Image == img }},
		{e: event(events.ContainerRemoving, ctr, 13, nil)},
		{e: event(events.ContainerRemoved, ctr, 14, nil), wantErr: events.ErrWrongPhase},
		{e: event(events.ContainerScratchRemoved, ctr, 15, nil),
			check: func(c *events.Container) bool { return c.Scratch == nil && c.Intent == events.ContainerRemoving }},
		{e: event(events.ContainerScratchRemoved, ctr, 16, nil), wantErr: events.ErrWrongPhase},
		{e: event(events.ContainerRemoved, ctr, 17, nil)},
		{e: event(events.ImageRemoved, img, 18, events.ImageRemovedData{Deleted: true})},
	}
	s := events.NewState(testNode, events.DefaultWindow)
	for _, st := range steps {
		before := s.Clone()
		err := s.Apply(st.e)
		if st.wantErr != nil {
			if !errors.Is(err, st.wantErr) {
				t.Fatalf("seq %d %s: Apply = %v, want %v", st.e.Seq, st.e.Short(), err, st.wantErr)
			}
			if diff := cmp.Diff(before, s, ignoreIndex); diff != "" {
				t.Fatalf("seq %d: a refused event changed the state:\n%s", st.e.Seq, diff)
			}
			continue
		}
		if err != nil {
			t.Fatalf("seq %d %s: Apply = %v", st.e.Seq, st.e.Short(), err)
		}
		if st.check != nil && !st.check(s.Containers[ctr]) {
			t.Fatalf("seq %d %s: record %+v, scratch %+v", st.e.Seq, st.e.Short(), s.Containers[ctr], s.Containers[ctr].Scratch)
		}
	}
	if len(s.Containers) != 0 || len(s.Images) != 0 {
		t.Fatalf("state not empty at the end: %+v %+v", s.Containers, s.Images)
	}
}

// TestApply_ScratchRollBack: a failed scratch leaves no scratch record; a
// create that failed after its scratch was made keeps it until
// scratch_removed, and no re-create may replace the record before.
func TestApply_ScratchRollBack(t *testing.T) {
	img := digest(1)
	spec := events.ContainerSpec{Image: events.ImageSpec{Ref: "example.com/web:1"}}
	s := events.NewState(testNode, events.DefaultWindow)
	for i, e := range []*events.Event{
		event(events.ContainerCreating, ctr, 1, events.CreatingData{Spec: spec}),
		event(events.ContainerScratchCreating, ctr, 2, events.ScratchCreatingData{Image: img}),
		event(events.ContainerScratchCreateFailed, ctr, 3, events.FailureData{Error: "disk full"}),
		event(events.ContainerCreateFailed, ctr, 4, events.FailureData{Error: "disk full"}),
		event(events.ContainerCreating, ctr, 5, events.CreatingData{Spec: spec}),
		event(events.ContainerScratchCreating, ctr, 6, events.ScratchCreatingData{Image: img}),
		event(events.ContainerScratchCreated, ctr, 7, events.ScratchCreatedData{Path: "/s"}),
		event(events.ContainerCreateFailed, ctr, 8, events.FailureData{Error: "host refused"}),
	} {
		if err := s.Apply(e); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	if users := s.ImageUsers(img); len(users) != 0 {
		t.Errorf("a failed container uses the image: %v", users)
	}
	if err := s.Apply(event(events.ContainerCreating, ctr, 9, events.CreatingData{Spec: spec})); !errors.Is(err, events.ErrWrongPhase) ||
		!strings.Contains(err.Error(), "scratch") {
		t.Fatalf("re-create over a scratch layer: %v", err)
	}
	if err := s.Apply(event(events.ContainerScratchRemoved, ctr, 10, nil)); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(event(events.ContainerCreating, ctr, 11, events.CreatingData{Spec: spec})); err != nil {
		t.Fatal(err)
	}
	if c := s.Containers[ctr]; c.Image != "" || c.Scratch != nil {
		t.Fatalf("re-created record keeps the old image: %+v", c)
	}
}

func TestState_CloneIsDeep_Images(t *testing.T) {
	s := events.NewState(testNode, events.DefaultWindow)
	img := digest(1)
	for _, e := range []*events.Event{
		event(events.ImagePulled, img, 1, pulled("a:1", 1, 2)),
		event(events.ContainerCreating, ctr, 2, events.CreatingData{Spec: fullSpec()}),
		event(events.ContainerScratchCreating, ctr, 3, events.ScratchCreatingData{Image: img, Parents: []string{digest(202), digest(201)}}),
	} {
		if err := s.Apply(e); err != nil {
			t.Fatal(err)
		}
	}
	before, _ := json.Marshal(s)
	c := s.Clone()
	im := c.Images[img]
	im.Refs[0], im.Layers[0].Size, im.Config.Cmd[0], im.Config.Env[0] = "x", 99, "x", "x"
	c.Containers[ctr].Scratch.Parents[0] = "x"
	c.Images["other"] = &events.Image{}
	after, _ := json.Marshal(s)
	if string(before) != string(after) {
		t.Fatalf("writing to the clone changed the original:\nbefore %s\nafter  %s", before, after)
	}
}

func TestRefToken(t *testing.T) {
	for ref, want := range map[string]string{
		"mcr.microsoft.com/windows/nanoserver:ltsc2022": "mcr%2Emicrosoft%2Ecom/windows/nanoserver:ltsc2022",
		"nanoserver":                      "nanoserver",
		"localhost:5000/a_b/c-d@sha256:0": "localhost:5000/a_b/c-d@sha256:0",
		"a*b>c%d e\tf\x7fé":               "a%2Ab%3Ec%25d%20e%09f%7F%C3%A9",
	} {
		got := events.RefToken(ref)
		if got != want {
			t.Errorf("RefToken(%q) = %q, want %q", ref, got, want)
		}
		if back, err := events.RefFromToken(got); err != nil || back != ref {
			t.Errorf("RefFromToken(%q) = %q, %v; want %q", got, back, err, ref)
		}
	}
	for _, tok := range []string{"a%2", "a%2e", "a%zz", "a.b", "a%41"} {
		if _, err := events.RefFromToken(tok); !errors.Is(err, events.ErrInvalid) {
			t.Errorf("RefFromToken(%q) = %v, want ErrInvalid", tok, err)
		}
	}
}

// FuzzRefToken: every string maps to one subject token without '.', '*',
// '>' or white space, and back.
func FuzzRefToken(f *testing.F) {
	f.Add("mcr.microsoft.com/windows/nanoserver:ltsc2022")
	f.Add("a%2Eb")
	f.Fuzz(func(t *testing.T, ref string) {
		tok := events.RefToken(ref)
		if strings.ContainsAny(tok, ".*> \t\r\n") {
			t.Fatalf("RefToken(%q) = %q holds a subject separator or wildcard", ref, tok)
		}
		back, err := events.RefFromToken(tok)
		if err != nil || back != ref {
			t.Fatalf("RefFromToken(RefToken(%q)) = %q, %v", ref, back, err)
		}
		if again, err := events.RefFromToken(ref); err == nil && events.RefToken(again) != ref {
			t.Fatalf("RefFromToken(%q) = %q, which does not map back", ref, again)
		}
	})
}

func TestDecodeCommand_ImageVerbs(t *testing.T) {
	const id = `"id":"c1"`
	tests := []struct {
		name, verb, body string
		wantMsg          string // "" when valid
	}{
		{"pull", events.VerbImagePull, `"image":{"ref":"mcr.microsoft.com/windows/nanoserver:ltsc2022"}`, ""},
		{"pull newer with auth", events.VerbImagePull, `"image":{"ref":"a:1","pull_policy":"newer"},"auth":{"username":"u","password":"p"}`, ""},
		{"pull without image", events.VerbImagePull, ``, "image: required by image.pull"},
		{"pull without ref", events.VerbImagePull, `"image":{}`, "image.ref: required"},
		{"pull with a blank ref", events.VerbImagePull, `"image":{"ref":"a b"}`, "image.ref"},
		{"pull with a bad policy", events.VerbImagePull, `"image":{"ref":"a","pull_policy":"sometimes"}`, "image.pull_policy"},
		{"pull names a container", events.VerbImagePull, `"container":"x","image":{"ref":"a"}`, "container: not accepted"},
		{"pull with target", events.VerbImagePull, `"image":{"ref":"a","target":"b"}`, "image.target: not accepted"},
		{"tag", events.VerbImageTag, `"image":{"ref":"a","target":"b:2"}`, ""},
		{"tag without target", events.VerbImageTag, `"image":{"ref":"a"}`, "image.target: required"},
		{"tag with auth", events.VerbImageTag, `"image":{"ref":"a","target":"b"},"auth":{"password":"p"}`, "auth: only"},
		{"remove forced", events.VerbImageRemove, `"image":{"ref":"a"},"force":true`, ""},
		{"remove with a policy", events.VerbImageRemove, `"image":{"ref":"a","pull_policy":"always"}`, "image.pull_policy"},
		{"prune", events.VerbImagePrune, `"image":{}`, ""},
		{"prune all", events.VerbImagePrune, `"image":{"all":true}`, ""},
		{"prune with force", events.VerbImagePrune, `"image":{},"force":true`, "force"},
		{"load", events.VerbImageLoad, `"image":{"source":"/tmp/a.tar"}`, ""},
		{"load without source", events.VerbImageLoad, `"image":{}`, "image.source: required"},
		{"load with all", events.VerbImageLoad, `"image":{"source":"x","all":true}`, "image.all"},
		{"start with image", events.VerbStart, `"container":"x","image":{"ref":"a"}`, "image: only"},
		{"stop with auth", events.VerbStop, `"container":"x","auth":{"username":"u"}`, "auth: only"},
		{"create with auth", events.VerbCreate, `"container":"x","spec":{"image":{"ref":"a"}},"auth":{"username":"u","password":"p"}`, ""},
		{"network.configure with image", events.VerbNetworkConfigure,
			`"network":{"cluster_cidr":"10.0.0.0/16","node_slice":"10.0.1.0/24","type":"nat"},"image":{}`, "image: only"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := "{" + id
			if tc.body != "" {
				body += "," + tc.body
			}
			_, err := events.DecodeCommand([]byte(body+"}"), tc.verb)
			if tc.wantMsg == "" {
				if err != nil {
					t.Fatalf("DecodeCommand(%s) = %v", body, err)
				}
				return
			}
			if !errors.Is(err, events.ErrInvalid) || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("DecodeCommand(%s) = %v, want ErrInvalid naming %q", body, err, tc.wantMsg)
			}
		})
	}
}

func TestRegistryAuth_NeverPrints(t *testing.T) {
	a := events.RegistryAuth{Username: "bob", Password: "s3cret", IdentityToken: "tok-id", RegistryToken: "tok-reg"}
	c := events.Command{ID: "c1", Verb: events.VerbImagePull, Auth: &a}
	for _, s := range []string{fmt.Sprint(a), fmt.Sprintf("%v %+v %#v %s %q", a, a, a, a, a), fmt.Sprintf("%+v", c), fmt.Sprintf("%v", *c.Auth)} {
		for _, secret := range []string{"s3cret", "tok-id", "tok-reg"} {
			if strings.Contains(s, secret) {
				t.Fatalf("%q shows a secret", s)
			}
		}
	}
}
