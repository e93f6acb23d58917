package kexecload

import (
	"errors"
	"fmt"
	"time"
)

// ErrSyncStalled is returned by SyncWatched when sync(2) made no progress
// for the whole timeout, as it does on a dead network mount.
var ErrSyncStalled = errors.New("sync(2) made no progress")

// syncPoll is how often SyncWatched reads the dirty counts.
var syncPoll = time.Second

// SyncProgress is one report of SyncWatched: how much data is still dirty
// or under writeback, and for how long sync(2) has run.
type SyncProgress struct {
	DirtyKB int64
	Elapsed time.Duration
}

// SyncWatched flushes every filesystem with sync(2) and watches the dirty
// and writeback page counts while it runs. It returns when sync returns,
// or with ErrSyncStalled when the counts have not fallen for timeout (the
// sync goes on in the background, stuck in the kernel). Each fall starts
// the timeout again, so a slow but moving flush is waited for. A timeout
// of 0 waits for ever. progress, when not nil, is called about once a
// second.
func (s *Syscalls) SyncWatched(timeout time.Duration,
	progress func(SyncProgress)) error {
	done := make(chan struct{})
	go func() {
		s.Sync()
		close(done)
	}()

	start := time.Now()
	lastProgress := start
	best, _ := s.dirtyKB()
	tick := time.NewTicker(syncPoll)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return nil
		case now := <-tick.C:
			kb, err := s.dirtyKB()
			if err == nil && kb < best {
				best, lastProgress = kb, now
			}
			if progress != nil {
				progress(SyncProgress{DirtyKB: kb, Elapsed: now.Sub(start)})
			}
			if timeout > 0 && now.Sub(lastProgress) >= timeout {
				return fmt.Errorf("%w for %v (%d kB still dirty)",
					ErrSyncStalled, timeout, kb)
			}
		}
	}
}
