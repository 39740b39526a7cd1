package control_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/micro"

	"github.com/berthhq/berth/control"
	"github.com/berthhq/berth/events"
)

// request sends a raw query and returns the answer, and the micro error
// code ("" on success).
func (h *harness) request(endpoint string, body string) ([]byte, string) {
	h.t.Helper()
	m, err := h.cnc.RequestWithContext(context.Background(), h.subj.API(endpoint), []byte(body))
	if err != nil {
		h.t.Fatalf("%s query: %v", endpoint, err)
	}
	return m.Data, m.Header.Get(micro.ErrorCodeHeader)
}

func TestQueries_RawErrors(t *testing.T) {
	h := newHarness(t, hconfig{})
	if _, err := h.client.Run(context.Background(), "web-1", *spec("img")); err != nil {
		t.Fatal(err)
	}
	if _, err := h.client.Create(context.Background(), "web-2", *spec("img")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		endpoint, body string
		code           string
		want           string
	}{
		{"ps", `{"all":true,"colour":1}`, "400", `"colour"`},
		{"ps", `{"all":true} {}`, "400", "trailing"},
		{"ps", `[`, "400", "query"},
		{"ps", `{"all":` + strings.Repeat(" ", control.MaxQuerySize) + `true}`, "400", "byte limit"},
		{"inspect", ``, "400", "container"},
		{"inspect", `{"container":"Bad!"}`, "400", "container"},
		{"inspect", `{"container":"nope"}`, "404", "nope"},
		{"stats", `{"container":"nope"}`, "404", "nope"},
		{"stats", `{"container":"web-2"}`, "409", "web-2 is created"},
		{"state", `{"at":"one"}`, "400", "at"},
		{"state", `{"at":99999}`, "404", "99999"},
		{"health", `{"verbose":true}`, "400", "verbose"},
		{"plan", `{"dry":true}`, "400", "dry"},
		{"plan", ``, "503", "does not plan"}, // this harness's agent has no planner
	}
	for _, tt := range tests {
		t.Run(tt.endpoint+" "+tt.code+" "+tt.want, func(t *testing.T) {
			data, code := h.request(tt.endpoint, tt.body)
			if code != tt.code {
				t.Fatalf("code %q, want %s (body %s)", code, tt.code, data)
			}
			var re events.ReplyError
			if err := json.Unmarshal(data, &re); err != nil {
				t.Fatalf("error body %q: %v", data, err)
			}
			if !strings.Contains(re.Message, tt.want) {
				t.Errorf("message %q does not name %q", re.Message, tt.want)
			}
		})
	}
}

func TestQueries_Client(t *testing.T) {
	h := newHarness(t, hconfig{})
	ctx := context.Background()
	for _, id := range []string{"web-1", "web-2", "web-3"} {
		if _, err := h.client.Run(ctx, id, *spec("img")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.client.Stop(ctx, "web-2", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := h.client.Create(ctx, "web-4", *spec("img")); err != nil {
		t.Fatal(err)
	}

	ids := func(cs []events.Container) string {
		var s []string
		for _, c := range cs {
			s = append(s, c.ID+":"+string(c.Phase))
		}
		return strings.Join(s, " ")
	}
	running, err := h.client.Ps(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(running), "web-3:running web-1:running"; got != want {
		t.Errorf("ps = %s, want %s", got, want)
	}
	all, err := h.client.Ps(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(all), "web-4:created web-3:running web-2:exited web-1:running"; got != want {
		t.Errorf("ps -a = %s, want %s", got, want)
	}

	c, err := h.client.Inspect(ctx, "web-2")
	if err != nil {
		t.Fatal(err)
	}
	if c.Phase != events.PhaseExited || c.Exit == nil || c.Exit.Code == nil || *c.Exit.Code != 0 {
		t.Errorf("inspect web-2 = %+v, want exited with code 0", c)
	}
	if _, err := h.client.Inspect(ctx, "nope"); !errors.Is(err, events.ErrNotFound) {
		t.Errorf("inspect nope: %v, want ErrNotFound", err)
	}

	st, err := h.client.Stats(ctx, "web-1")
	if err != nil {
		t.Fatal(err)
	}
	if st.MemoryPrivateBytes == 0 {
		t.Errorf("stats web-1 = %+v", st)
	}
	if _, err := h.client.Stats(ctx, "web-2"); !errors.Is(err, events.ErrWrongPhase) {
		t.Errorf("stats of an exited container: %v, want ErrWrongPhase", err)
	}

	now, err := h.client.State(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(now.Containers) != 4 || now.Seq != h.j.LastSeq() || len(now.Outcomes) != 0 {
		t.Errorf("state: %d containers at %d with %d outcomes, want 4 at %d without outcomes",
			len(now.Containers), now.Seq, len(now.Outcomes), h.j.LastSeq())
	}
	// The state after web-3 started, before web-2 stopped.
	at := now.Containers["web-3"].Seq
	past, err := h.client.State(ctx, at)
	if err != nil {
		t.Fatal(err)
	}
	if past.Seq != at || len(past.Containers) != 3 || past.Containers["web-2"].Phase != events.PhaseRunning {
		t.Errorf("state at %d: seq %d, containers %v", at, past.Seq, past.Containers)
	}

	health, err := h.client.Health(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if health.Node != node || health.Version != control.Version || health.Containers != 4 || health.Intake != "consuming" {
		t.Errorf("health = %+v", health)
	}
}

func TestQueries_StateWithoutHistory(t *testing.T) {
	h := newHarness(t, hconfig{noInbox: true, noHistory: true})
	if _, err := h.client.State(context.Background(), 1); !errors.Is(err, events.ErrUnavailable) {
		t.Errorf("state at 1 without history: %v, want ErrUnavailable", err)
	}
	health, err := h.client.Health(context.Background())
	if err != nil || health.Intake != "disabled" {
		t.Errorf("health = %+v, %v; want intake disabled", health, err)
	}
}

func TestQueries_ServiceDiscovery(t *testing.T) {
	h := newHarness(t, hconfig{noInbox: true})
	subj, err := micro.ControlSubject(micro.InfoVerb, h.subj.ServiceName(), "")
	if err != nil {
		t.Fatal(err)
	}
	m, err := h.cnc.Request(subj, nil, 5e9)
	if err != nil {
		t.Fatal(err)
	}
	var info micro.Info
	if err := json.Unmarshal(m.Data, &info); err != nil {
		t.Fatal(err)
	}
	if info.Name != "berth" || info.Version != control.Version || info.Metadata["node"] != node {
		t.Errorf("service info = %+v", info.ServiceIdentity)
	}
	var subjects []string
	for _, ep := range info.Endpoints {
		subjects = append(subjects, ep.Subject)
	}
	want := "berth.api.n1.ps berth.api.n1.inspect berth.api.n1.stats berth.api.n1.state berth.api.n1.health berth.api.n1.images berth.api.n1.plan"
	if got := strings.Join(subjects, " "); got != want {
		t.Errorf("endpoints %s, want %s", got, want)
	}
}

func TestQueries_NoAgent(t *testing.T) {
	h := newHarness(t, hconfig{noInbox: true})
	if err := h.srv.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := h.client.Ps(context.Background(), false); !errors.Is(err, events.ErrUnavailable) {
		t.Errorf("ps with no agent: %v, want ErrUnavailable", err)
	}
}
