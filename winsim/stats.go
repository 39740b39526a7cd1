package winsim

import (
	"time"

	"github.com/berthhq/berth/hcsdriver"
)

// The silo's own share of resources: its system processes, before any
// process berth starts.
const (
	siloCPUPerSecond = 4 * time.Millisecond // CPU time per second of uptime
	siloWorkingSet   = 48 * mib
	siloBootRead     = 24 * mib
	siloBootWrite    = 2 * mib
)

// commitOf is the commit charge that goes with a private working set.
func commitOf(ws uint64) uint64 { return ws + ws/4 }

// workingSetLocked is the private working set of the silo and its running
// processes.
func (s *system) workingSetLocked() uint64 {
	ws := uint64(siloWorkingSet)
	for _, p := range s.procs {
		if !p.exited {
			ws += p.workingSet
		}
	}
	return ws
}

// statsLocked computes the statistics of a running system from the clock:
// CPU time is the silo's background share for its uptime plus what every
// process has been charged (busy work, start-up); memory is the silo's base
// plus each running process's working set, capped by the configured limit.
func (h *Host) statsLocked(s *system) hcsdriver.Stats {
	now := h.clock.Now()
	up := now.Sub(s.startedAt)
	cpu := time.Duration(up.Seconds()*float64(siloCPUPerSecond)) + s.cpuExited
	for _, p := range s.procs {
		if !p.exited {
			cpu += p.cpu
		}
	}
	ws := s.workingSetLocked()
	commit, peak := commitOf(ws), s.commitPeak
	limit := uint64(max(s.cfg.MemoryMB, 0)) * mib
	if limit > 0 {
		ws, commit, peak = min(ws, limit), min(commit, limit), min(peak, limit)
	}
	total := uint64(cpu.Microseconds())
	user := total * 3 / 5
	return hcsdriver.Stats{
		Timestamp:          now,
		StartedAt:          s.startedAt,
		UptimeMicros:       uint64(up.Microseconds()),
		CPUTotalMicros:     total,
		CPUUserMicros:      user,
		CPUKernelMicros:    total - user,
		MemoryPrivateBytes: ws,
		MemoryCommitBytes:  commit,
		MemoryCommitPeak:   max(peak, commit),
		MemoryLimitBytes:   limit,
		StorageReadBytes:   s.storageRead,
		StorageWriteBytes:  siloBootWrite,
	}
}
