package winsim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/berthhq/berth/hcsdriver"
)

// StateFile is the name of the file, in the directory given to Open, that
// holds the host's state.
const StateFile = "host.json"

const stateVersion = 1

type stateFile struct {
	Version int       `json:"version"`
	SavedAt time.Time `json:"saved_at"`
	State   State     `json:"state"`
}

// Open returns a host whose state is kept in dir: it loads the state file if
// there is one, and writes it again (to a temporary file, then renamed over
// it) after every change. Loading models the host the previous agent left:
//   - every handle is gone, so stopped systems are gone too, and so is a
//     system whose graceful stop has completed meanwhile;
//   - guests have run on in the clock's time since they started: a process
//     whose program has finished by now has exited, and as nobody held a
//     handle to it, it is gone (OpenProcess fails with ErrNotFound, as on
//     Windows); the others run on, with no pipes (their output is lost,
//     their stdin at EOF);
//   - networks and endpoints are as they were; an endpoint stays bound to
//     the system it served, and attached while that system is restored.
//
// Open returns once every restored guest has caught up with the clock.
func Open(dir string, opts ...Option) (*Host, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("host state directory: %w", err)
	}
	h := New(opts...)
	h.dir = dir
	path := filepath.Join(dir, StateFile)
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("host state: %w", err)
	}
	var f stateFile
	if err == nil {
		if err := json.Unmarshal(data, &f); err != nil {
			return nil, fmt.Errorf("host state %s: %w", path, err)
		}
		if f.Version != stateVersion {
			return nil, fmt.Errorf("host state %s: version %d, want %d", path, f.Version, stateVersion)
		}
	}
	h.mu.Lock()
	settled := h.restoreLocked(f.State)
	h.saveLocked()
	err = h.saveErr
	h.unlock()
	for _, c := range settled {
		<-c
	}
	if err != nil {
		h.Close()
		return nil, err
	}
	return h, nil
}

// restoreLocked rebuilds the host from st and starts the guests that still
// run. It returns a channel per guest, closed once the guest has caught up.
func (h *Host) restoreLocked(st State) []chan struct{} {
	h.nextPid = max(st.NextPid, firstPid)
	h.restoreNetLocked(st)
	now := h.clock.Now()
	var settled []chan struct{}
	for _, ss := range st.Systems {
		if ss.State == hcsdriver.StateStopped || (!ss.StopAt.IsZero() && !ss.StopAt.After(now)) {
			continue
		}
		s := h.newSystem(ss.ID, ss.Config, ss.CreatedAt)
		s.state, s.startedAt, s.initPid = ss.State, ss.StartedAt, ss.InitPid
		s.cpuExited, s.storageRead, s.commitPeak = ss.CPUExited, ss.StorageRead, ss.CommitPeak
		h.systems[s.id] = s
		if !ss.StopAt.IsZero() {
			h.scheduleStopLocked(s, ss.StopAt)
		}
		for _, ps := range ss.Processes {
			argv := hcsdriver.SplitCommandLine(ps.Config.CommandLine)
			prog := lookupProgram(argv)
			if ps.Exited || prog == nil {
				continue
			}
			p := &process{
				sys: s, pid: ps.Pid, cfg: ps.Config, image: prog.image, workingSet: prog.workingSet,
				startedAt: ps.StartedAt, done: make(chan struct{}),
			}
			s.procs[p.pid] = p
			c := make(chan struct{})
			settled = append(settled, c)
			h.startGuestLocked(p, prog, argv, c)
		}
	}
	return settled
}

// changedLocked notes that the state changed; unlock then writes it.
func (h *Host) changedLocked() { h.dirty = true }

// unlock releases Host.mu, writing the state file first if the state
// changed, so that each operation is saved once, and before it returns.
func (h *Host) unlock() {
	if h.dirty {
		h.saveLocked()
	}
	h.mu.Unlock()
}

// saveLocked writes the state file of a host opened from a directory. A
// failure is kept and returned by Close.
func (h *Host) saveLocked() {
	h.dirty = false
	if h.dir == "" || h.closed {
		return
	}
	data, err := json.MarshalIndent(stateFile{Version: stateVersion, SavedAt: h.clock.Now(), State: h.stateLocked()}, "", "  ")
	if err == nil {
		err = writeFileAtomic(filepath.Join(h.dir, StateFile), data)
	}
	if err != nil && h.saveErr == nil {
		h.saveErr = fmt.Errorf("host state: %w", err)
	}
}

func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}
