//go:build windows

package wclayer

import (
	"fmt"
	"runtime"

	"github.com/Microsoft/hcsshim/osversion"
	"golang.org/x/sys/windows"

	"github.com/berthhq/berth/imagedriver"
)

// verNTWorkstation is OSVERSIONINFOEX.ProductType on a client edition.
const verNTWorkstation = 1

// LocalHost describes this machine: windows on its architecture, with its build and update
// revision ("10.0.20348.2227"), and whether it is a client edition. Without
// the revision (the registry value is unreadable) the version has three parts,
// which still decides compatibility: it goes by build.
func LocalHost() imagedriver.Host {
	v := osversion.Get()
	version := fmt.Sprintf("%d.%d.%d", v.MajorVersion, v.MinorVersion, v.Build)
	if ubr, err := osversion.BuildRevision(); err == nil {
		version += fmt.Sprintf(".%d", ubr)
	}
	return imagedriver.Host{
		Platform: imagedriver.Platform{OS: "windows", Architecture: runtime.GOARCH, OSVersion: version},
		Client:   windows.RtlGetVersion().ProductType == verNTWorkstation,
	}
}
