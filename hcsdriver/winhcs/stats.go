package winhcs

import (
	"time"

	"github.com/berthhq/berth/hcsdriver"
)

// sample holds the figures berth reads from hcsshim's Statistics (schema
// v1), in HCS's units: times in 100 ns ticks, sizes in bytes.
type sample struct {
	Timestamp   time.Time // when HCS took the sample
	StartTime   time.Time // ContainerStartTime
	Uptime100ns uint64

	CPUTotal100ns  uint64 // Processor.TotalRuntime100ns
	CPUUser100ns   uint64 // Processor.RuntimeUser100ns
	CPUKernel100ns uint64 // Processor.RuntimeKernel100ns

	MemoryPrivateWorkingSet uint64 // Memory.UsagePrivateWorkingSetBytes
	MemoryCommit            uint64 // Memory.UsageCommitBytes
	MemoryCommitPeak        uint64 // Memory.UsageCommitPeakBytes

	StorageReadBytes  uint64 // Storage.ReadSizeBytes
	StorageWriteBytes uint64 // Storage.WriteSizeBytes
}

// statsOf translates s into hcsdriver.Stats. Times become microseconds,
// rounded down; the memory figure is the private working set, as the commit
// figures are reported beside it; the memory limit is memoryMB, the limit
// the system was created with, in bytes (HCS v1 does not report it; 0, for
// unknown or unlimited, is left out).
func statsOf(s sample, memoryMB int64) hcsdriver.Stats {
	st := hcsdriver.Stats{
		Timestamp:          s.Timestamp,
		StartedAt:          s.StartTime,
		UptimeMicros:       s.Uptime100ns / 10,
		CPUTotalMicros:     s.CPUTotal100ns / 10,
		CPUUserMicros:      s.CPUUser100ns / 10,
		CPUKernelMicros:    s.CPUKernel100ns / 10,
		MemoryPrivateBytes: s.MemoryPrivateWorkingSet,
		MemoryCommitBytes:  s.MemoryCommit,
		MemoryCommitPeak:   s.MemoryCommitPeak,
		StorageReadBytes:   s.StorageReadBytes,
		StorageWriteBytes:  s.StorageWriteBytes,
	}
	if memoryMB > 0 {
		st.MemoryLimitBytes = uint64(memoryMB) << 20
	}
	return st
}
