package kexecload

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// meminfo serves /proc/meminfo with a dirty count that tests change.
func meminfo(dirty *atomic.Int64) func(string) ([]byte, error) {
	return func(string) ([]byte, error) {
		return []byte(fmt.Sprintf("MemTotal: 1 kB\nDirty: %d kB\n"+
			"Writeback: 0 kB\n", dirty.Load())), nil
	}
}

func TestSyncWatched(t *testing.T) {
	defer func(d time.Duration) { syncPoll = d }(syncPoll)
	syncPoll = 5 * time.Millisecond

	for _, tt := range []struct {
		name string
		// sync runs as sync(2) would; it may block on stop.
		sync    func(dirty *atomic.Int64, stop chan struct{})
		timeout time.Duration
		wantErr error
	}{
		{
			name:    "returns",
			sync:    func(*atomic.Int64, chan struct{}) {},
			timeout: 50 * time.Millisecond,
		},
		{
			name: "stalled on a dead mount",
			sync: func(_ *atomic.Int64, stop chan struct{}) {
				<-stop
			},
			timeout: 50 * time.Millisecond,
			wantErr: ErrSyncStalled,
		},
		{
			name: "slow but moving is waited for",
			sync: func(dirty *atomic.Int64, _ chan struct{}) {
				// Four times the timeout in all, falling every step.
				for dirty.Load() > 0 {
					time.Sleep(20 * time.Millisecond)
					dirty.Add(-100)
				}
			},
			timeout: 50 * time.Millisecond,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var dirty atomic.Int64
			dirty.Store(1000)
			stop := make(chan struct{})
			defer close(stop)
			s := &Syscalls{
				Sync:     func() { tt.sync(&dirty, stop) },
				ReadFile: meminfo(&dirty),
			}
			reports := 0
			err := s.SyncWatched(tt.timeout, func(SyncProgress) {
				reports++
			})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("SyncWatched() = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr != nil && reports == 0 {
				t.Errorf("SyncWatched() reported no progress before " +
					"giving up")
			}
		})
	}
}

func TestDirtyKB(t *testing.T) {
	s := &Syscalls{ReadFile: func(string) ([]byte, error) {
		return []byte("Dirty: 12 kB\nWriteback: 30 kB\n"), nil
	}}
	if got, err := s.dirtyKB(); got != 42 || err != nil {
		t.Errorf("dirtyKB() = %d, %v, want 42", got, err)
	}
	s.ReadFile = func(string) ([]byte, error) { return []byte("x"), nil }
	if _, err := s.dirtyKB(); err == nil {
		t.Error("dirtyKB(no lines) = nil error, want one")
	}
}
