package imagedriver

import (
	"errors"
	"strings"
	"testing"
)

func TestChooseIsolation(t *testing.T) {
	const (
		ws2019 = "10.0.17763.5576"
		ws2022 = "10.0.20348.2227"
		ws2025 = "10.0.26100.1742"
		win11  = "10.0.22631.3007"
	)
	server := func(v string) Host {
		return Host{Platform: Platform{OS: "windows", Architecture: "amd64", OSVersion: v}}
	}
	client := func(v string) Host { h := server(v); h.Client = true; return h }
	for _, tc := range []struct {
		name      string
		requested string
		host      Host
		image     string
		want      Isolation
		err       error
		says      []string // the error names these
	}{
		{"server default is process", "", server(ws2022), "10.0.20348.1", IsolationProcess, nil, nil},
		{"client default is hyperv", "", client(win11), ws2022, IsolationHyperV, nil, nil},
		{"client may ask for process", "process", client(ws2022), ws2022, IsolationProcess, nil, nil},
		{"server may ask for hyperv", "hyperv", server(ws2022), ws2022, IsolationHyperV, nil, nil},
		{"2025 runs 2022 images with process isolation", "process", server(ws2025), ws2022, IsolationProcess, nil, nil},
		{"2022 refuses 2019 images with process isolation", "", server(ws2022), ws2019, "", ErrIncompatible,
			[]string{"process isolation", "10.0.17763", "10.0.20348", "use isolation hyperv"}},
		{"2022 refuses 2025 images with process isolation", "process", server(ws2022), ws2025, "", ErrIncompatible,
			[]string{"10.0.26100", "image built for 10.0.20348 or older"}},
		{"2019 runs only 2019 with process isolation", "process", server(ws2019), "10.0.17134.1", "", ErrIncompatible, nil},
		{"hyperv runs older builds", "hyperv", server(ws2022), ws2019, IsolationHyperV, nil, nil},
		{"hyperv refuses newer builds", "hyperv", server(ws2022), ws2025, "", ErrIncompatible,
			[]string{"Hyper-V isolation", "10.0.26100"}},
		{"client default refuses newer builds", "", client(ws2022), ws2025, "", ErrIncompatible, nil},
		{"image without version is let through", "process", server(ws2022), "", IsolationProcess, nil, nil},
		{"host without version is let through", "", server(""), ws2019, IsolationProcess, nil, nil},
		{"unknown isolation", "vm", server(ws2022), ws2022, "", ErrInvalid, []string{`"vm"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ChooseIsolation(tc.requested, tc.host, tc.image)
			if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Fatalf("ChooseIsolation(%q, %v, %q) error = %v, want %v", tc.requested, tc.host, tc.image, err, tc.err)
			}
			if got != tc.want {
				t.Errorf("ChooseIsolation(%q, %v, %q) = %q, want %q", tc.requested, tc.host, tc.image, got, tc.want)
			}
			for _, s := range tc.says {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
		})
	}
}
