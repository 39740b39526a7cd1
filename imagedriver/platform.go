package imagedriver

import (
	"fmt"
	"strconv"
	"strings"
)

// Platform names what an image runs on, or what a host can run.
type Platform struct {
	OS           string `json:"os"`                   // "windows", "linux"
	Architecture string `json:"architecture"`         // "amd64", "arm64"
	OSVersion    string `json:"os_version,omitempty"` // Windows: "10.0.<build>.<revision>"
}

// String formats p as "os/architecture", followed by ":os_version" when the
// version is set (the form [ParsePlatform] reads).
func (p Platform) String() string {
	s := p.OS + "/" + p.Architecture
	if p.OSVersion != "" {
		s += ":" + p.OSVersion
	}
	return s
}

// ParsePlatform reads "os/architecture[:os_version]", such as
// "windows/amd64:10.0.20348.2227". It fails with ErrInvalid otherwise.
func ParsePlatform(s string) (Platform, error) {
	spec, version, _ := strings.Cut(s, ":")
	osName, arch, ok := strings.Cut(spec, "/")
	if !ok || osName == "" || arch == "" || strings.Contains(arch, "/") {
		return Platform{}, fmt.Errorf("platform %q: %w: want os/architecture[:os_version]", s, ErrInvalid)
	}
	if version != "" && osName == "windows" {
		if _, ok := parseOSVersion(version); !ok {
			return Platform{}, fmt.Errorf("platform %q: %w: os_version is not 10.0.<build>[.<revision>]", s, ErrInvalid)
		}
	}
	return Platform{OS: osName, Architecture: arch, OSVersion: version}, nil
}

// osVersion is a parsed Windows version "major.minor.build[.revision]".
type osVersion struct {
	major, minor, build, revision uint64
}

func parseOSVersion(s string) (osVersion, bool) {
	parts := strings.Split(s, ".")
	if len(parts) < 3 || len(parts) > 4 {
		return osVersion{}, false
	}
	var n [4]uint64
	for i, p := range parts {
		v, err := strconv.ParseUint(p, 10, 32)
		if err != nil {
			return osVersion{}, false
		}
		n[i] = v
	}
	return osVersion{n[0], n[1], n[2], n[3]}, true
}

// Windows Server LTSC builds from which on a host also runs images of the
// previous LTSC, up to its own build (the rule of hcsshim's
// osversion.CheckHostAndContainerCompat), in ascending order.
var compatLTSC = []uint64{20348, 26100}

// windowsCompatible reports whether a process-isolated container of build ctr
// runs on a host of build host: the builds must be equal below Windows Server
// 2022; from it on, the container's build must lie between the newest LTSC
// older than the host (or 2022 itself) and the host's own build.
func windowsCompatible(host, ctr osVersion) bool {
	if host.major != ctr.major || host.minor != ctr.minor {
		return false
	}
	if host.build < compatLTSC[0] {
		return host.build == ctr.build
	}
	oldest := compatLTSC[0]
	for i := len(compatLTSC) - 1; i >= 0; i-- {
		if host.build > compatLTSC[i] {
			oldest = compatLTSC[i]
			break
		}
	}
	return oldest <= ctr.build && ctr.build <= host.build
}

// hyperVCompatible reports whether a Hyper-V isolated container of build ctr
// runs on a host of build host: any build up to the host's.
func hyperVCompatible(host, ctr osVersion) bool {
	return host.major == ctr.major && host.minor == ctr.minor && ctr.build <= host.build
}

// MatchPlatform picks the image, among those offered (in the order of the
// image index), that best runs on host, and returns its position.
//
// OS and architecture must equal host's (case-insensitively); an empty field
// of host accepts any value. Off Windows the first match wins. For Windows,
// an offered os_version must not be a later build than the host's, and the
// ranking is:
//
//  1. the host's exact build and revision;
//  2. the host's build, highest revision first;
//  3. another build compatible by the process isolation rule (the same build
//     below Windows Server 2022; from 2022 on, any build from the previous
//     LTSC up to the host's), highest build and then revision first;
//  4. an older build, which only Hyper-V isolation runs (see
//     [ChooseIsolation]), highest first;
//  5. an image without os_version (older manifests lack it), which cannot be
//     checked and is taken only when nothing versioned fits.
//
// An offered os_version that does not parse never matches. A host without
// os_version accepts every build and prefers the highest. Ties go to the
// earlier entry. When nothing fits, MatchPlatform returns a *PlatformError
// (matching ErrNoMatchingPlatform) that lists every platform on offer.
func MatchPlatform(host Platform, offered []Platform) (int, error) {
	hostVer, hostVersioned := parseOSVersion(host.OSVersion)
	best, bestRank := -1, rank{}
	for i, p := range offered {
		if !fieldMatches(host.OS, p.OS) || !fieldMatches(host.Architecture, p.Architecture) {
			continue
		}
		r := rank{tier: 1}
		if strings.EqualFold(p.OS, "windows") {
			var ok bool
			if r, ok = windowsRank(host, hostVer, hostVersioned, p); !ok {
				continue
			}
		}
		if best < 0 || r.better(bestRank) {
			best, bestRank = i, r
		}
	}
	if best < 0 {
		return -1, &PlatformError{Want: host, Offered: append([]Platform(nil), offered...)}
	}
	return best, nil
}

// rank orders candidates: a higher tier wins, then a higher build, then a
// higher revision.
type rank struct {
	tier            int
	build, revision uint64
}

func (r rank) better(o rank) bool {
	if r.tier != o.tier {
		return r.tier > o.tier
	}
	if r.build != o.build {
		return r.build > o.build
	}
	return r.revision > o.revision
}

func windowsRank(host Platform, hv osVersion, hostVersioned bool, p Platform) (rank, bool) {
	if p.OSVersion == "" {
		return rank{tier: 1}, true
	}
	// Tiers: 5 exact, 4 same build, 3 process-compatible, 2 Hyper-V only,
	// 1 unversioned.
	v, ok := parseOSVersion(p.OSVersion)
	if !ok {
		return rank{}, false
	}
	r := rank{build: v.build, revision: v.revision}
	switch {
	case !hostVersioned && host.OSVersion != "":
		return rank{}, false // the host's own version is unreadable: match nothing
	case !hostVersioned:
		r.tier = 3
	case v.build == hv.build && v.revision == hv.revision && windowsCompatible(hv, v):
		r.tier = 5
	case v.build == hv.build && windowsCompatible(hv, v):
		r.tier = 4
	case windowsCompatible(hv, v):
		r.tier = 3
	case hyperVCompatible(hv, v):
		r.tier = 2
	default:
		return rank{}, false
	}
	return r, true
}

func fieldMatches(want, got string) bool { return want == "" || strings.EqualFold(want, got) }

// PlatformError reports that no image of Ref runs on Want. It matches
// ErrNoMatchingPlatform.
type PlatformError struct {
	Ref     string     // the reference, when known
	Want    Platform   // the host's platform
	Offered []Platform // every platform the reference offers, in index order
}

func (e *PlatformError) Error() string {
	var b strings.Builder
	b.WriteString("no image")
	if e.Ref != "" {
		fmt.Fprintf(&b, " of %s", e.Ref)
	}
	fmt.Fprintf(&b, " runs on %s; on offer:", e.Want)
	if len(e.Offered) == 0 {
		b.WriteString(" nothing")
	}
	for i, p := range e.Offered {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(" " + p.String())
	}
	return b.String()
}

func (e *PlatformError) Unwrap() error { return ErrNoMatchingPlatform }
