package imagedriver_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"

	"github.com/berthhq/berth/events"
	"github.com/berthhq/berth/imagedriver"
)

func win(v string) imagedriver.Platform {
	return imagedriver.Platform{OS: "windows", Architecture: "amd64", OSVersion: v}
}

func TestMatchPlatform(t *testing.T) {
	index := []imagedriver.Platform{
		win("10.0.17763.5329"),
		win("10.0.20348.2227"),
		win("10.0.20348.2400"),
		win("10.0.20348.2300"),
		win("10.0.26100.1742"),
		{OS: "linux", Architecture: "amd64"},
		{OS: "windows", Architecture: "arm64", OSVersion: "10.0.20348.2227"},
	}
	tests := []struct {
		name    string
		host    imagedriver.Platform
		offered []imagedriver.Platform
		want    int // -1: no match
	}{
		{"exact build and revision", win("10.0.20348.2227"), index, 1},
		{"same build, highest revision", win("10.0.20348.2350"), index, 2},
		{"same build, revision above every image", win("10.0.20348.9999"), index, 2},
		{"ltsc2025 host prefers its own build", win("10.0.26100.1"), index, 4},
		{"ltsc2019 host needs its exact build", win("10.0.17763.1"), index, 0},
		{"ltsc2016 host: nothing", win("10.0.14393.1"), index, -1},
		{"windows 11 host runs ltsc2022", win("10.0.22631.3007"), index, 2},
		{"ltsc2025 host runs ltsc2022 when that is all", win("10.0.26100.1"), index[1:4], 1},
		{"ltsc2022 host refuses a newer build", win("10.0.20348.1"), index[4:5], -1},
		{"newer host takes 2019 for Hyper-V isolation when that is all", win("10.0.26100.1"), index[:1], 0},
		{"process-compatible build before an older one", win("10.0.26100.1"), []imagedriver.Platform{win("10.0.17763.1"), win("10.0.20348.1")}, 1},
		{"linux host", imagedriver.Platform{OS: "linux", Architecture: "amd64"}, index, 5},
		{"architecture must match", imagedriver.Platform{OS: "windows", Architecture: "arm64", OSVersion: "10.0.20348.1"}, index, 6},
		{"host without version takes the highest", imagedriver.Platform{OS: "windows", Architecture: "amd64"}, index, 4},
		{"any platform: first windows build by rank", imagedriver.Platform{}, index[:2], 1},
		{"unversioned image only as a last resort", win("10.0.20348.1"),
			[]imagedriver.Platform{{OS: "windows", Architecture: "amd64"}, win("10.0.20348.5")}, 1},
		{"older build before an unversioned image", win("10.0.20348.1"),
			[]imagedriver.Platform{{OS: "windows", Architecture: "amd64"}, win("10.0.17763.1")}, 1},
		{"unversioned image when nothing else fits", win("10.0.20348.1"),
			[]imagedriver.Platform{win("10.0.26100.1"), {OS: "windows", Architecture: "amd64"}}, 1},
		{"unparseable image version never matches", win("10.0.20348.1"), []imagedriver.Platform{win("10.0.x")}, -1},
		{"unparseable host version matches nothing versioned", win("ltsc2022"), index, -1},
		{"major and minor must match", win("10.1.20348.1"), index, -1},
		{"ties go to the first entry", win("10.0.20348.1"), []imagedriver.Platform{win("10.0.20348.7"), win("10.0.20348.7")}, 0},
		{"case-insensitive os", imagedriver.Platform{OS: "Windows", Architecture: "AMD64", OSVersion: "10.0.20348.2227"}, index, 1},
		{"empty offer", win("10.0.20348.1"), nil, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := imagedriver.MatchPlatform(tt.host, tt.offered)
			if tt.want < 0 {
				var pe *imagedriver.PlatformError
				if !errors.Is(err, imagedriver.ErrNoMatchingPlatform) || !errors.As(err, &pe) {
					t.Fatalf("MatchPlatform = %d, %v; want a *PlatformError", got, err)
				}
				if len(pe.Offered) != len(tt.offered) || pe.Want != tt.host {
					t.Fatalf("PlatformError = %+v", pe)
				}
				for _, p := range tt.offered {
					if !strings.Contains(err.Error(), p.String()) {
						t.Errorf("error %q does not list %s", err, p)
					}
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("MatchPlatform = %d, %v; want %d (%s)", got, err, tt.want, tt.offered[tt.want])
			}
		})
	}
}

func TestPlatformErrorMessage(t *testing.T) {
	_, err := imagedriver.MatchPlatform(win("10.0.14393.1"), []imagedriver.Platform{
		win("10.0.20348.2227"), {OS: "linux", Architecture: "amd64"}})
	var pe *imagedriver.PlatformError
	if !errors.As(err, &pe) {
		t.Fatal(err)
	}
	pe.Ref = "example.com/app:1"
	const want = "no image of example.com/app:1 runs on windows/amd64:10.0.14393.1; on offer: windows/amd64:10.0.20348.2227, linux/amd64"
	if got := pe.Error(); got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
}

func TestParsePlatform(t *testing.T) {
	for _, s := range []string{"windows/amd64:10.0.20348.2227", "windows/amd64", "linux/arm64", "windows/amd64:10.0.17763"} {
		p, err := imagedriver.ParsePlatform(s)
		if err != nil || p.String() != s {
			t.Errorf("ParsePlatform(%q) = %v, %v; want it back", s, p, err)
		}
	}
	for _, s := range []string{"", "windows", "/amd64", "windows/", "windows/amd64/v8/x", "windows/amd64:ltsc2022", "windows/amd64:10.0"} {
		if _, err := imagedriver.ParsePlatform(s); !errors.Is(err, imagedriver.ErrInvalid) {
			t.Errorf("ParsePlatform(%q) = %v; want ErrInvalid", s, err)
		}
	}
}

func TestChainID(t *testing.T) {
	d := func(n int) string { return fmt.Sprintf("sha256:%064d", n) }
	ids := imagedriver.ChainIDs([]string{d(1), d(2), d(3)})
	want := []string{
		d(1), // a base layer's chain id is its diff id
		"sha256:e0213565073dd272477933ef550455db21856966e444074f1492aef0939305ac",
		"sha256:af4149e65a6923bb39782a876ce40a7c3b08fc85ec732e9efcc661d9399016d0",
	}
	for i := range want {
		if ids[i] != want[i] {
			t.Errorf("chain id %d = %s, want %s", i, ids[i], want[i])
		}
	}
	if got := imagedriver.ChainID(ids[1], d(3)); got != ids[2] {
		t.Errorf("ChainID = %s, want %s", got, ids[2])
	}
}

func TestValidateDigest(t *testing.T) {
	if err := imagedriver.ValidateDigest("sha256:" + strings.Repeat("ab", 32)); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"", "sha256:", "sha256:" + strings.Repeat("AB", 32), "sha512:" + strings.Repeat("ab", 32),
		"sha256:" + strings.Repeat("ab", 31), "sha256:../" + strings.Repeat("a", 61)} {
		if err := imagedriver.ValidateDigest(d); !errors.Is(err, imagedriver.ErrInvalid) {
			t.Errorf("ValidateDigest(%q) = %v, want ErrInvalid", d, err)
		}
	}
}

func TestClass(t *testing.T) {
	tests := []struct {
		err  error
		want error
	}{
		{imagedriver.ErrInvalidReference, events.ErrInvalid},
		{imagedriver.ErrInvalid, events.ErrInvalid},
		{imagedriver.ErrUnauthorized, events.ErrInvalid},
		{imagedriver.ErrUnsafeEntry, events.ErrInvalid},
		{imagedriver.ErrInvalidImage, events.ErrInvalid},
		{imagedriver.ErrIncompatible, events.ErrInvalid},
		{imagedriver.ErrNotFound, events.ErrNotFound},
		{&imagedriver.PlatformError{}, events.ErrNotFound},
		{imagedriver.ErrExists, events.ErrConflict},
		{imagedriver.ErrInUse, events.ErrConflict},
		{imagedriver.ErrUnavailable, events.ErrUnavailable},
		{imagedriver.ErrDigestMismatch, events.ErrUnavailable},
		{context.DeadlineExceeded, events.ErrUnavailable},
		{errors.New("boom"), events.ErrInternal},
	}
	for _, tt := range tests {
		wrapped := fmt.Errorf("pull x: %w", tt.err)
		if got := imagedriver.Class(wrapped); got != tt.want {
			t.Errorf("Class(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
	if imagedriver.Class(nil) != nil {
		t.Error("Class(nil) != nil")
	}
}

func TestCredentialsNeverPrint(t *testing.T) {
	c := imagedriver.Credentials{Username: "alice", Password: "hunter2", IdentityToken: "idtok", RegistryToken: "regtok"}
	opts := imagedriver.PullOptions{Auth: &c}
	var logged strings.Builder
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("pull", "auth", c, "ptr", &c)
	js, err := json.Marshal(struct {
		C imagedriver.Credentials
		P *imagedriver.Credentials
	}{c, &c})
	if err != nil {
		t.Fatal(err)
	}
	outputs := []string{
		fmt.Sprint(c), fmt.Sprintf("%v %+v %#v %s %q %x", c, c, c, c, c, c),
		fmt.Sprintf("%v %+v %#v", &c, &c, &c),
		fmt.Sprintf("%+v %#v", struct{ C imagedriver.Credentials }{c}, struct{ C imagedriver.Credentials }{c}),
		fmt.Sprintf("%+v", opts), logged.String(), string(js),
	}
	for _, out := range outputs {
		for _, secret := range []string{"hunter2", "idtok", "regtok"} {
			if strings.Contains(out, secret) {
				t.Errorf("%q shows a secret", out)
			}
		}
	}
	if !strings.Contains(fmt.Sprint(c), "alice") {
		t.Errorf("%v should name the user", c)
	}
}

func TestImageJSONRoundTrip(t *testing.T) {
	im := imagedriver.Image{
		Descriptor: imagedriver.Descriptor{Ref: "example.com/app:1", Digest: "sha256:a", IndexDigest: "sha256:i",
			MediaType: "application/vnd.oci.image.manifest.v1+json", Size: 512, Platform: win("10.0.20348.1")},
		Config: imagedriver.ImageConfig{Entrypoint: []string{"cmd"}, Cmd: []string{"/c", "echo"}, Env: []string{"A=1"},
			WorkingDir: `C:\app`, User: "ContainerUser", Labels: map[string]string{"k": "v"}, OS: "windows", Architecture: "amd64", OSVersion: "10.0.20348.1"},
		Layers: []imagedriver.LayerInfo{{Digest: "sha256:l", DiffID: "sha256:d", ChainID: "sha256:c", Size: 7,
			MediaType: "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", Foreign: true, URLs: []string{"https://example.com/l"}}},
		Size: 7,
	}
	b, err := json.Marshal(im)
	if err != nil {
		t.Fatal(err)
	}
	var back imagedriver.Image
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, im) {
		t.Fatalf("round trip lost something:\n%s\n%+v", b, back)
	}
}

func TestTopLayer(t *testing.T) {
	if (imagedriver.Image{}).TopLayer() != "" {
		t.Fatal("an image without layers has no top layer")
	}
	im := imagedriver.Image{Layers: []imagedriver.LayerInfo{{ChainID: "a"}, {ChainID: "b"}}}
	if im.TopLayer() != "b" {
		t.Fatal(im.TopLayer())
	}
}

func TestCleanEntryName(t *testing.T) {
	for _, c := range []struct {
		in, want string
		ok       bool
	}{
		{"Files/a", "Files/a", true},
		{`Files\a\b`, "Files/a/b", true},
		{"./Files//a/", "Files/a", true},
		{".", "", true},
		{"", "", true},
		{"Files/a..b", "Files/a..b", true},
		{"..", "", false},
		{"Files/..", "", false},
		{`Files\..`, "", false},
		{"/Files", "", false},
		{`\Files`, "", false},
		{"C:Files", "", false},
		{"z:/Files", "", false},
		{"Files/\x00", "", false},
	} {
		got, ok := imagedriver.CleanEntryName(c.in)
		if got != c.want || ok != c.ok {
			t.Errorf("CleanEntryName(%q) = %q, %v; want %q, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}
