package imagedriver

import (
	"errors"
	"fmt"
)

// Host describes the machine that runs containers.
type Host struct {
	Platform
	// Client is true on a client edition of Windows (Windows 10 or 11),
	// where containers run with Hyper-V isolation unless process isolation
	// is asked for, as Docker does there.
	Client bool `json:"client,omitempty"`
}

// Isolation is how a container is separated from its host.
type Isolation string

// The isolation modes of Windows containers.
const (
	// IsolationProcess shares the host's kernel; the image's build must be
	// one the host's kernel runs (see [MatchPlatform]).
	IsolationProcess Isolation = "process"
	// IsolationHyperV runs the container in a utility VM with the image's
	// own kernel, so any build up to the host's runs.
	IsolationHyperV Isolation = "hyperv"
)

// ErrIncompatible: the image's Windows build cannot run on the host's build
// with the isolation asked for.
var ErrIncompatible = errors.New("image build incompatible with host")

// ChooseIsolation decides how a container of an image built for imageOS
// (its os.version, "10.0.<build>[.<revision>]", or "") runs on host.
// requested is the container spec's isolation: "process", "hyperv", or ""
// for the host's default, which is process isolation on a server and Hyper-V
// isolation on a client edition.
//
// Process isolation needs a build the host's kernel runs: the same build
// below Windows Server 2022, from it on any build from the previous LTSC up
// to the host's own. Hyper-V isolation runs any build up to the host's. An
// image or host whose version is unknown cannot be checked and is let
// through. Anything else fails with an error that matches ErrIncompatible
// and names both builds and what would run.
func ChooseIsolation(requested string, host Host, imageOS string) (Isolation, error) {
	iso := Isolation(requested)
	switch {
	case requested == "" && host.Client:
		iso = IsolationHyperV
	case requested == "":
		iso = IsolationProcess
	case iso != IsolationProcess && iso != IsolationHyperV:
		return "", fmt.Errorf("%w: isolation %q is not one of process, hyperv", ErrInvalid, requested)
	}
	hv, okHost := parseOSVersion(host.OSVersion)
	cv, okImage := parseOSVersion(imageOS)
	if !okHost || !okImage {
		return iso, nil
	}
	switch {
	case iso == IsolationProcess && !windowsCompatible(hv, cv):
		hint := "use isolation hyperv or an image built for " + buildOf(hv)
		if !hyperVCompatible(hv, cv) { // Hyper-V would not run it either
			hint = "use an image built for " + buildOf(hv) + " or older"
		}
		return "", fmt.Errorf("%w: process isolation cannot run an image for Windows %s on host build %s; %s",
			ErrIncompatible, buildOf(cv), buildOf(hv), hint)
	case iso == IsolationHyperV && !hyperVCompatible(hv, cv):
		return "", fmt.Errorf("%w: Hyper-V isolation cannot run an image for Windows %s on host build %s; use an image built for %s or older",
			ErrIncompatible, buildOf(cv), buildOf(hv), buildOf(hv))
	}
	return iso, nil
}

func buildOf(v osVersion) string { return fmt.Sprintf("%d.%d.%d", v.major, v.minor, v.build) }
