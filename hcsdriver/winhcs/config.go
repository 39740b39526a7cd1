package winhcs

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/berthhq/berth/hcsdriver"
)

// ErrInvalidConfig reports a compute system or process config that HCS would
// reject or misread. It is returned before any call reaches the host.
var ErrInvalidConfig = errors.New("invalid config")

// Document is the HCS schema v1 ContainerConfig that berth sends to
// CreateContainer. Field names, types and JSON tags are those of hcsshim's
// ContainerConfig (internal/hcs/schema1), so a Document marshals to the same
// JSON; the Windows build converts it field by field. Fields berth never sets
// are left out.
type Document struct {
	SystemType        string       // always "Container"
	Name              string       // the compute system id
	Owner             string       `json:",omitempty"` // owner tag, filters GetContainers
	VolumePath        string       `json:",omitempty"` // scratch volume, \\?\Volume{GUID} without a trailing backslash
	LayerFolderPath   string       `json:",omitempty"` // scratch layer folder
	Layers            []Layer      // read-only parents, immediate parent first
	ProcessorCount    uint32       `json:",omitempty"`
	ProcessorWeight   uint64       `json:",omitempty"` // berth leaves it 0: default shares
	ProcessorMaximum  int64        `json:",omitempty"` // 1/100 of a percent, 1..10000
	MemoryMaximumInMB int64        `json:",omitempty"`
	HostName          string       `json:",omitempty"`
	MappedDirectories []MappedDir  `json:",omitempty"`
	MappedPipes       []MappedPipe `json:",omitempty"`
	HvPartition       bool         // true for Hyper-V isolation
	EndpointList      []string     `json:",omitempty"` // HCN endpoint GUIDs
	HvRuntime         *HvRuntime   `json:",omitempty"` // Hyper-V isolation only
	DNSSearchList     string       `json:",omitempty"` // comma separated
	// TerminateOnLastHandleClosed is always false: a system must outlive the
	// agent that created it.
	TerminateOnLastHandleClosed bool `json:",omitempty"`
}

// Layer is hcsshim's Layer: a read-only layer's GUID and folder.
type Layer struct {
	ID   string
	Path string
}

// MappedDir is hcsshim's MappedDir: a host folder mapped into the container.
type MappedDir struct {
	HostPath          string
	ContainerPath     string
	ReadOnly          bool
	BandwidthMaximum  uint64
	IOPSMaximum       uint64
	CreateInUtilityVM bool
}

// MappedPipe is hcsshim's MappedPipe: a host named pipe mapped into the
// container.
type MappedPipe struct {
	HostPath          string
	ContainerPipeName string
}

// HvRuntime is hcsshim's HvRuntime: where the utility VM image of a Hyper-V
// container is.
type HvRuntime struct {
	ImagePath string `json:",omitempty"`
}

// pipePrefix starts a named pipe path on Windows.
const pipePrefix = `\\.\pipe\`

// BuildDocument builds the v1 document for compute system id from cfg, on a
// host with hostCPUs logical processors. It returns an error wrapping
// ErrInvalidConfig, naming the field, when cfg breaks one of these rules:
//
//   - there is at least one layer; every layer has a folder and a GUID id
//     (callers derive it with hcsshim's NameToGuid from the folder name);
//     layers keep their order, immediate parent first;
//   - process isolation needs VolumePath, a \\?\Volume{GUID} path (a trailing
//     backslash is dropped), and takes no UtilityVMPath;
//   - Hyper-V isolation sets HvPartition and HvRuntime.ImagePath
//     (UtilityVMPath, or the base layer's UtilityVM folder), needs
//     LayerFolderPath, and takes no VolumePath;
//   - ProcessorMaximum is 0..10000 and MemoryMB is not negative; endpoints
//     are GUIDs; mounts name both paths; a mount whose container path is a
//     named pipe (\\.\pipe\NAME) maps a pipe instead of a folder.
//
// CPU: Config.ProcessorMaximum is a share of the whole host. HCS applies one
// processor control at a time to a process-isolated container, so a set
// maximum is sent alone and the count is dropped; a count alone is capped
// at hostCPUs. A Hyper-V container gets ProcessorCount virtual processors
// (at most hostCPUs; when only a maximum is set, as many as the share needs)
// and its maximum is rescaled to a share of those processors, left out when
// it is the whole of them.
func BuildDocument(id string, cfg hcsdriver.Config, hostCPUs int) (*Document, error) {
	if id == "" {
		return nil, invalid("id", "empty")
	}
	doc := &Document{
		SystemType:        "Container",
		Name:              id,
		Owner:             cfg.Owner,
		LayerFolderPath:   cfg.LayerFolderPath,
		HostName:          cfg.HostName,
		MemoryMaximumInMB: cfg.MemoryMB,
		HvPartition:       cfg.HyperV,
		EndpointList:      slices.Clone(cfg.Endpoints),
		DNSSearchList:     strings.Join(cfg.DNSSearchList, ","),
	}
	if len(cfg.Layers) == 0 {
		return nil, invalid("layers", "none given")
	}
	for i, l := range cfg.Layers {
		if l.Path == "" {
			return nil, invalid(fmt.Sprintf("layers[%d].path", i), "empty")
		}
		if !isGUID(l.ID) {
			return nil, invalid(fmt.Sprintf("layers[%d].id", i), "%q is not a GUID", l.ID)
		}
		doc.Layers = append(doc.Layers, Layer{ID: l.ID, Path: l.Path})
	}
	if cfg.HyperV {
		if cfg.VolumePath != "" {
			return nil, invalid("volume_path", "set for Hyper-V isolation, which mounts the scratch itself")
		}
		if cfg.LayerFolderPath == "" {
			return nil, invalid("layer_folder_path", "empty; Hyper-V isolation needs the scratch layer folder")
		}
		image := cfg.UtilityVMPath
		if image == "" {
			image = cfg.Layers[len(cfg.Layers)-1].Path + `\UtilityVM`
		}
		doc.HvRuntime = &HvRuntime{ImagePath: image}
	} else {
		if cfg.UtilityVMPath != "" {
			return nil, invalid("utility_vm_path", "set for process isolation")
		}
		vol := strings.TrimSuffix(cfg.VolumePath, `\`)
		guid, prefixed := strings.CutPrefix(vol, `\\?\Volume{`)
		guid, suffixed := strings.CutSuffix(guid, "}")
		if !prefixed || !suffixed || !isGUID(guid) {
			return nil, invalid("volume_path", `%q is not a \\?\Volume{GUID} path`, cfg.VolumePath)
		}
		doc.VolumePath = vol
	}
	if cfg.MemoryMB < 0 {
		return nil, invalid("memory_mb", "%d is negative", cfg.MemoryMB)
	}
	if cfg.ProcessorMaximum < 0 || cfg.ProcessorMaximum > 10000 {
		return nil, invalid("processor_maximum", "%d is outside 0..10000", cfg.ProcessorMaximum)
	}
	doc.ProcessorCount, doc.ProcessorMaximum = processors(cfg, max(hostCPUs, 1))
	for i, e := range cfg.Endpoints {
		if !isGUID(e) {
			return nil, invalid(fmt.Sprintf("endpoints[%d]", i), "%q is not a GUID", e)
		}
	}
	for i, m := range cfg.Mounts {
		if m.HostPath == "" || m.ContainerPath == "" {
			return nil, invalid(fmt.Sprintf("mounts[%d]", i), "host and container paths are both needed")
		}
		if name, ok := strings.CutPrefix(m.ContainerPath, pipePrefix); ok {
			doc.MappedPipes = append(doc.MappedPipes, MappedPipe{HostPath: m.HostPath, ContainerPipeName: name})
			continue
		}
		doc.MappedDirectories = append(doc.MappedDirectories,
			MappedDir{HostPath: m.HostPath, ContainerPath: m.ContainerPath, ReadOnly: m.ReadOnly})
	}
	return doc, nil
}

// processors returns the document's ProcessorCount and ProcessorMaximum; see
// BuildDocument.
func processors(cfg hcsdriver.Config, host int) (count uint32, maximum int64) {
	count = min(cfg.ProcessorCount, uint32(host))
	if !cfg.HyperV {
		if cfg.ProcessorMaximum > 0 {
			return 0, cfg.ProcessorMaximum
		}
		return count, 0
	}
	if cfg.ProcessorMaximum == 0 {
		return count, 0
	}
	hostShare := float64(cfg.ProcessorMaximum) * float64(host) / 10000 // in processors
	if count == 0 {
		count = uint32(math.Ceil(hostShare))
	}
	maximum = int64(math.Round(hostShare / float64(count) * 10000))
	if maximum >= 10000 { // the whole of its processors: no cap
		return count, 0
	}
	return count, maximum // at least cfg.ProcessorMaximum, since count <= host
}

// ProcessDocument is the HCS schema v1 ProcessConfig berth sends to
// CreateProcess, with hcsshim's field names, types and JSON tags.
type ProcessDocument struct {
	CommandLine      string            `json:",omitempty"`
	User             string            `json:",omitempty"`
	WorkingDirectory string            `json:",omitempty"`
	Environment      map[string]string `json:",omitempty"`
	EmulateConsole   bool              `json:",omitempty"`
	CreateStdInPipe  bool              `json:",omitempty"`
	CreateStdOutPipe bool              `json:",omitempty"`
	CreateStdErrPipe bool              `json:",omitempty"`
	ConsoleSize      [2]uint           `json:",omitempty"` // height, width
}

// BuildProcess builds the v1 process document from cfg. The command line is
// required (an error wrapping ErrInvalidConfig otherwise). An emulated
// console merges stderr into stdout, so no stderr pipe is asked for then,
// and only then is the console size sent, height first.
func BuildProcess(cfg hcsdriver.ProcessConfig) (*ProcessDocument, error) {
	if strings.TrimSpace(cfg.CommandLine) == "" {
		return nil, invalid("command_line", "empty")
	}
	doc := &ProcessDocument{
		CommandLine:      cfg.CommandLine,
		User:             cfg.User,
		WorkingDirectory: cfg.WorkingDirectory,
		Environment:      cfg.Environment,
		EmulateConsole:   cfg.EmulateConsole,
		CreateStdInPipe:  cfg.Stdin,
		CreateStdOutPipe: cfg.Stdout,
		CreateStdErrPipe: cfg.Stderr && !cfg.EmulateConsole,
	}
	if cfg.EmulateConsole {
		doc.ConsoleSize = [2]uint{uint(cfg.ConsoleHeight), uint(cfg.ConsoleWidth)}
	}
	return doc, nil
}

func invalid(field, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalidConfig, field, fmt.Sprintf(format, args...))
}

// isGUID reports whether s is a GUID in its 8-4-4-4-12 hex form, without
// braces, in either case.
func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}
