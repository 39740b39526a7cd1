package winhcs

import (
	"testing"
	"time"

	"github.com/berthhq/berth/hcsdriver"
)

func TestStatsOf(t *testing.T) {
	at := time.Date(2025, 3, 1, 12, 0, 30, 0, time.UTC)
	started := at.Add(-30 * time.Second)
	tests := []struct {
		name     string
		in       sample
		memoryMB int64
		want     hcsdriver.Stats
	}{
		{
			name: "running container with a memory limit",
			in: sample{
				Timestamp: at, StartTime: started, Uptime100ns: 300_000_000,
				CPUTotal100ns: 15_000_007, CPUUser100ns: 10_000_005, CPUKernel100ns: 5_000_002,
				MemoryPrivateWorkingSet: 41 << 20, MemoryCommit: 60 << 20, MemoryCommitPeak: 75 << 20,
				StorageReadBytes: 1 << 30, StorageWriteBytes: 4096,
			},
			memoryMB: 512,
			want: hcsdriver.Stats{
				Timestamp: at, StartedAt: started, UptimeMicros: 30_000_000,
				CPUTotalMicros: 1_500_000, CPUUserMicros: 1_000_000, CPUKernelMicros: 500_000,
				MemoryPrivateBytes: 41 << 20, MemoryCommitBytes: 60 << 20, MemoryCommitPeak: 75 << 20,
				MemoryLimitBytes: 512 << 20, StorageReadBytes: 1 << 30, StorageWriteBytes: 4096,
			},
		},
		{
			name:     "no limit known",
			in:       sample{Timestamp: at, CPUTotal100ns: 9, MemoryPrivateWorkingSet: 1},
			memoryMB: 0,
			want:     hcsdriver.Stats{Timestamp: at, MemoryPrivateBytes: 1},
		},
		{
			name:     "a limit above 4 GiB does not overflow",
			in:       sample{Timestamp: at},
			memoryMB: 65536,
			want:     hcsdriver.Stats{Timestamp: at, MemoryLimitBytes: 64 << 30},
		},
		{
			name:     "negative limit is none",
			in:       sample{Timestamp: at},
			memoryMB: -1,
			want:     hcsdriver.Stats{Timestamp: at},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := statsOf(tc.in, tc.memoryMB); got != tc.want {
				t.Errorf("statsOf() =\n%+v\nwant\n%+v", got, tc.want)
			}
		})
	}
}
