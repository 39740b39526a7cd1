package winhcs

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berthhq/berth/hcsdriver"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

const (
	baseLayer  = `C:\ProgramData\berth\layers\sha256-5f1d`
	baseID     = "0b1f6c1e-9a3d-5e0e-8c51-7d3a2b4f6e10"
	appLayer   = `C:\ProgramData\berth\layers\sha256-a9c2`
	appID      = "7c4e2a90-13b5-5d4f-9e2a-1f0c3b8d6a57"
	scratchDir = `C:\ProgramData\berth\scratch\web-1`
	volume     = `\\?\Volume{3f2504e0-4f89-11d3-9a0c-0305e82c3301}\`
	endpointA  = "6a1f0d3e-5b2c-4e8f-9a7d-0c1b2e3f4a5b"
	endpointB  = "D9E8F7A6-B5C4-4D3E-8F2A-1B0C9D8E7F6A"
)

// processConfig is a process-isolated container on two layers.
func processConfig() hcsdriver.Config {
	return hcsdriver.Config{
		Owner:           "berth",
		HostName:        "web-1",
		Layers:          []hcsdriver.Layer{{ID: appID, Path: appLayer}, {ID: baseID, Path: baseLayer}},
		VolumePath:      volume,
		LayerFolderPath: scratchDir,
		MemoryMB:        512,
	}
}

// hypervConfig is processConfig under Hyper-V isolation.
func hypervConfig() hcsdriver.Config {
	cfg := processConfig()
	cfg.HyperV = true
	cfg.VolumePath = ""
	return cfg
}

// golden compares got, marshalled as indented JSON, with
// testdata/name.json, or rewrites the file under -update.
func golden(t *testing.T, name string, got any) {
	t.Helper()
	b, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, '\n')
	path := filepath.Join("testdata", name+".json")
	if *update {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(b, want) {
		t.Errorf("%s differs from the golden file:\n--- got\n%s--- want\n%s", path, b, want)
	}
}

// documentCases are the configs pinned by golden files in testdata.
func documentCases() []struct {
	name  string
	cfg   hcsdriver.Config
	hostN int
} {
	mounts := processConfig()
	mounts.Mounts = []hcsdriver.Mount{
		{HostPath: `D:\data`, ContainerPath: `C:\data`, ReadOnly: true},
		{HostPath: `D:\cache`, ContainerPath: `C:\cache`},
		{HostPath: `\\.\pipe\docker_engine`, ContainerPath: `\\.\pipe\docker_engine`},
	}
	endpoints := processConfig()
	endpoints.Endpoints = []string{endpointA, endpointB}
	endpoints.DNSSearchList = []string{"service.local", "corp.local"}
	cpuProcess := processConfig()
	cpuProcess.ProcessorCount, cpuProcess.ProcessorMaximum = 2, 1875 // 1.5 of 8
	cpuWhole := processConfig()
	cpuWhole.ProcessorCount = 64 // more than the host has
	cpuHyperV := hypervConfig()
	cpuHyperV.ProcessorCount, cpuHyperV.ProcessorMaximum = 2, 1875
	cpuHyperVMaxOnly := hypervConfig()
	cpuHyperVMaxOnly.ProcessorMaximum = 625 // 0.5 of 8
	uvm := hypervConfig()
	uvm.UtilityVMPath = `C:\ProgramData\berth\uvm\20348`
	minimal := hcsdriver.Config{Layers: []hcsdriver.Layer{{ID: baseID, Path: baseLayer}},
		VolumePath: strings.TrimSuffix(volume, `\`)}
	return []struct {
		name  string
		cfg   hcsdriver.Config
		hostN int
	}{
		{"process", processConfig(), 8},
		{"process_minimal", minimal, 8},
		{"hyperv", hypervConfig(), 8},
		{"hyperv_utility_vm", uvm, 8},
		{"mounts", mounts, 8},
		{"endpoints", endpoints, 8},
		{"cpu_process_fraction", cpuProcess, 8},
		{"cpu_process_count", cpuWhole, 8},
		{"cpu_hyperv_fraction", cpuHyperV, 8},
		{"cpu_hyperv_maximum_only", cpuHyperVMaxOnly, 8},
	}
}

func TestBuildDocument_Golden(t *testing.T) {
	for _, tc := range documentCases() {
		t.Run(tc.name, func(t *testing.T) {
			doc, err := BuildDocument("web-1", tc.cfg, tc.hostN)
			if err != nil {
				t.Fatal(err)
			}
			if doc.TerminateOnLastHandleClosed {
				t.Error("TerminateOnLastHandleClosed is set: the system would die with the agent")
			}
			golden(t, "document_"+tc.name, doc)
		})
	}
}

func TestBuildDocument_Processors(t *testing.T) {
	tests := []struct {
		name        string
		hyperV      bool
		count       uint32
		maximum     int64
		host        int
		wantCount   uint32
		wantMaximum int64
	}{
		{name: "none", host: 8},
		{name: "process count", count: 2, host: 8, wantCount: 2},
		{name: "process count capped", count: 16, host: 8, wantCount: 8},
		{name: "process maximum wins over count", count: 2, maximum: 1875, host: 8, wantMaximum: 1875},
		{name: "process maximum alone", maximum: 5000, host: 4, wantMaximum: 5000},
		{name: "hyperv count", hyperV: true, count: 2, host: 8, wantCount: 2},
		{name: "hyperv 1.5 of 8", hyperV: true, count: 2, maximum: 1875, host: 8, wantCount: 2, wantMaximum: 7500},
		{name: "hyperv whole processors drop the maximum", hyperV: true, count: 2, maximum: 2500, host: 8, wantCount: 2},
		{name: "hyperv maximum alone sizes the count", hyperV: true, maximum: 625, host: 8, wantCount: 1, wantMaximum: 5000},
		{name: "hyperv smallest share", hyperV: true, count: 64, maximum: 1, host: 64, wantCount: 64, wantMaximum: 1},
		{name: "unknown host counts as 1", count: 4, host: 0, wantCount: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := processConfig()
			if tc.hyperV {
				cfg = hypervConfig()
			}
			cfg.ProcessorCount, cfg.ProcessorMaximum = tc.count, tc.maximum
			doc, err := BuildDocument("web-1", cfg, tc.host)
			if err != nil {
				t.Fatal(err)
			}
			if doc.ProcessorCount != tc.wantCount || doc.ProcessorMaximum != tc.wantMaximum {
				t.Errorf("count, maximum = %d, %d; want %d, %d",
					doc.ProcessorCount, doc.ProcessorMaximum, tc.wantCount, tc.wantMaximum)
			}
		})
	}
}

func TestBuildDocument_Invalid(t *testing.T) {
	tests := []struct {
		name  string
		id    string
		edit  func(*hcsdriver.Config)
		field string
	}{
		{"empty id", "", func(*hcsdriver.Config) {}, "id"},
		{"no layers", "c", func(c *hcsdriver.Config) { c.Layers = nil }, "layers"},
		{"layer without path", "c", func(c *hcsdriver.Config) { c.Layers[1].Path = "" }, "layers[1].path"},
		{"layer id not a guid", "c", func(c *hcsdriver.Config) { c.Layers[0].ID = "sha256-a9c2" }, "layers[0].id"},
		{"layer id in braces", "c", func(c *hcsdriver.Config) { c.Layers[0].ID = "{" + appID + "}" }, "layers[0].id"},
		{"process without volume", "c", func(c *hcsdriver.Config) { c.VolumePath = "" }, "volume_path"},
		{"process volume is a folder", "c", func(c *hcsdriver.Config) { c.VolumePath = `C:\scratch` }, "volume_path"},
		{"process volume with bad guid", "c", func(c *hcsdriver.Config) { c.VolumePath = `\\?\Volume{nope}\` }, "volume_path"},
		{"process with utility vm", "c", func(c *hcsdriver.Config) { c.UtilityVMPath = `C:\uvm` }, "utility_vm_path"},
		{"hyperv with volume", "c", func(c *hcsdriver.Config) { c.HyperV = true }, "volume_path"},
		{"hyperv without scratch folder", "c", func(c *hcsdriver.Config) {
			c.HyperV, c.VolumePath, c.LayerFolderPath = true, "", ""
		}, "layer_folder_path"},
		{"negative memory", "c", func(c *hcsdriver.Config) { c.MemoryMB = -1 }, "memory_mb"},
		{"maximum above 10000", "c", func(c *hcsdriver.Config) { c.ProcessorMaximum = 10001 }, "processor_maximum"},
		{"negative maximum", "c", func(c *hcsdriver.Config) { c.ProcessorMaximum = -5 }, "processor_maximum"},
		{"endpoint not a guid", "c", func(c *hcsdriver.Config) { c.Endpoints = []string{endpointA, "web-1"} }, "endpoints[1]"},
		{"mount without target", "c", func(c *hcsdriver.Config) {
			c.Mounts = []hcsdriver.Mount{{HostPath: `D:\data`}}
		}, "mounts[0]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := processConfig()
			tc.edit(&cfg)
			doc, err := BuildDocument(tc.id, cfg, 8)
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("err = %v, doc = %+v; want ErrInvalidConfig", err, doc)
			}
			if !strings.Contains(err.Error(), ": "+tc.field+": ") {
				t.Errorf("err = %q; want it to name field %s", err, tc.field)
			}
		})
	}
}

// BuildDocument must not alias the caller's slices: the document is
// kept by the driver while the caller may reuse its config.
func TestBuildDocument_CopiesSlices(t *testing.T) {
	cfg := processConfig()
	cfg.Endpoints = []string{endpointA}
	doc, err := BuildDocument("web-1", cfg, 8)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Layers[0].Path = `C:\elsewhere`
	if doc.Layers[0].Path != appLayer {
		t.Errorf("document layer changed with the config: %q", doc.Layers[0].Path)
	}
	cfg.Endpoints[0] = endpointB
	if doc.EndpointList[0] != endpointA {
		t.Errorf("document endpoint changed with the config: %q", doc.EndpointList[0])
	}
}

func TestBuildProcess_Golden(t *testing.T) {
	tests := []struct {
		name string
		cfg  hcsdriver.ProcessConfig
	}{
		{"init", hcsdriver.ProcessConfig{
			CommandLine:      hcsdriver.CommandLine([]string{"cmd", "/c", "echo hi & exit /b 3"}),
			User:             "ContainerUser",
			WorkingDirectory: `C:\app`,
			Environment:      map[string]string{"MODE": "prod", "PATH": `C:\Windows\system32;C:\Windows`},
			Stdout:           true,
			Stderr:           true,
		}},
		{"exec_tty", hcsdriver.ProcessConfig{
			CommandLine:    "cmd",
			EmulateConsole: true,
			ConsoleWidth:   120,
			ConsoleHeight:  40,
			Stdin:          true,
			Stdout:         true,
			Stderr:         true, // merged into stdout by the console
		}},
		{"detached", hcsdriver.ProcessConfig{CommandLine: `ping -t localhost`, ConsoleWidth: 80, ConsoleHeight: 25}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc, err := BuildProcess(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, "process_"+tc.name, doc)
		})
	}
}

func TestBuildProcess_EmptyCommandLine(t *testing.T) {
	for _, cl := range []string{"", "  \t"} {
		if _, err := BuildProcess(hcsdriver.ProcessConfig{CommandLine: cl, Stdout: true}); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("BuildProcess(%q) err = %v; want ErrInvalidConfig", cl, err)
		}
	}
}

func TestIsGUID(t *testing.T) {
	tests := map[string]bool{
		baseID:                                   true,
		endpointB:                                true,
		"":                                       false,
		"0b1f6c1e9a3d5e0e8c517d3a2b4f6e10":       false,
		"0b1f6c1e-9a3d-5e0e-8c51-7d3a2b4f6e1g":   false,
		"0b1f6c1e-9a3d-5e0e-8c51_7d3a2b4f6e10":   false,
		"{0b1f6c1e-9a3d-5e0e-8c51-7d3a2b4f6e10}": false,
	}
	for s, want := range tests {
		if got := isGUID(s); got != want {
			t.Errorf("isGUID(%q) = %v; want %v", s, got, want)
		}
	}
}
