package plugin

import (
	"fmt"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/tetratelabs/wazero/experimental"
	"golang.org/x/sys/unix"
)

// mmapAllocator backs each guest memory with an mmap reservation of the plugin's memory
// budget (PROT_NONE, MAP_NORESERVE) whose pages are made accessible as the guest grows.
// The base address never moves, so TFLite may keep pointers into guest memory, and the
// budget is enforced: growing past it fails (memory.grow returns -1).
type mmapAllocator struct {
	budget uint64
	live   *atomic.Int64 // reservations not yet freed, for leak checks
	reg    *memories     // the same reservations, for GuestResident
}

// memories is the set of a runtime's mapped guest memories.
type memories struct {
	mu  sync.Mutex
	set map[*mmapMemory]struct{}
}

func (r *memories) add(m *mmapMemory) {
	if r == nil {
		return
	}
	r.mu.Lock()
	if r.set == nil {
		r.set = map[*mmapMemory]struct{}{}
	}
	r.set[m] = struct{}{}
	r.mu.Unlock()
}

// resident is the bytes of the guest memories in RAM now (mincore over each reservation:
// committed pages a guest never touched are not counted).
func (r *memories) resident() (n uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ps := uint64(unix.Getpagesize())
	var vec []byte
	for m := range r.set {
		pages := (uint64(len(m.buf)) + ps - 1) / ps
		if uint64(cap(vec)) < pages {
			vec = make([]byte, pages)
		}
		vec = vec[:pages]
		// x/sys/unix has no Mincore wrapper for Linux.
		if _, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(m.base()), uintptr(len(m.buf)), uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
			continue
		}
		for _, v := range vec {
			n += uint64(v & 1)
		}
	}
	return n * ps
}

func (a mmapAllocator) Allocate(cap, max uint64) experimental.LinearMemory {
	reserve := a.budget
	if max < reserve {
		reserve = max
	}
	reserve = (reserve + pageSize - 1) &^ (pageSize - 1)
	if reserve == 0 {
		reserve = pageSize
	}
	buf, err := unix.Mmap(-1, 0, int(reserve), unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		// No address space (ulimit -v, many large budgets): every Reallocate fails. wazero
		// then panics on the initial size; NewInstance turns that into an error.
		return &mmapMemory{err: fmt.Errorf("cannot reserve %d bytes of address space for guest memory: %w", reserve, err)}
	}
	a.live.Add(1)
	m := &mmapMemory{buf: buf, live: a.live, reg: a.reg}
	a.reg.add(m)
	return m
}

const pageSize = 65536

type mmapMemory struct {
	buf       []byte // the whole reservation
	committed uint64 // bytes made readable and writable
	live      *atomic.Int64
	reg       *memories
	err       error // why the reservation failed
}

func (m *mmapMemory) Reallocate(size uint64) []byte {
	if size > uint64(len(m.buf)) {
		return nil // over budget
	}
	if size > m.committed {
		end := (size + pageSize - 1) &^ (pageSize - 1)
		if end > uint64(len(m.buf)) {
			end = uint64(len(m.buf))
		}
		if err := unix.Mprotect(m.buf[m.committed:end], unix.PROT_READ|unix.PROT_WRITE); err != nil {
			return nil
		}
		m.committed = end
	}
	return m.buf[:size:size]
}

func (m *mmapMemory) Free() {
	if m.buf != nil {
		if m.reg != nil {
			m.reg.mu.Lock()
			delete(m.reg.set, m)
			m.reg.mu.Unlock()
		}
		_ = unix.Munmap(m.buf)
		m.buf = nil
		m.live.Add(-1)
	}
}

// base returns the address of guest memory offset 0.
func (m *mmapMemory) base() unsafe.Pointer { return unsafe.Pointer(unsafe.SliceData(m.buf)) }
