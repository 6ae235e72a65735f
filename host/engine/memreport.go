package engine

import (
	"bufio"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// MemoryStatus is where the process's resident memory is, in MiB: /proc/self/smaps
// sorted by mapping, the guest memories by mincore and the Go runtime's own figures
// (RATIONALE.md, "Idle memory: where it goes"). Linux only; zero elsewhere.
type MemoryStatus struct {
	RSS float64 `json:"rss_mib"`
	// GoRuntime is what the Go runtime holds from the system and has not released
	// (MemStats.Sys − HeapReleased: heap, stacks, its own structures; an upper bound of
	// its resident part); GoHeapInuse and GoHeapFree (free pages kept, not yet returned)
	// are the heap's share of it.
	GoRuntime   float64 `json:"go_runtime_mib"`
	GoHeapInuse float64 `json:"go_heap_inuse_mib"`
	GoHeapFree  float64 `json:"go_heap_free_mib"`
	// CompiledCode is anonymous executable memory: wazero's compiled plugins (and JIT
	// code of a delegate, if any).
	CompiledCode float64 `json:"compiled_code_mib"`
	// Guest is the resident pages of the plugins' guest memories (GuestMemories of them).
	Guest         float64 `json:"guest_mib"`
	GuestMemories int64   `json:"guest_memories"`
	// Binary is edgehost's own file mappings; Libraries every shared library's (TFLite's
	// most of it); CHeap glibc's main arena ([heap]).
	Binary    float64 `json:"binary_mib"`
	Libraries float64 `json:"libraries_mib"`
	CHeap     float64 `json:"c_heap_mib"`
	// OtherAnon is the rest of anonymous memory: glibc's other malloc arenas and large
	// mallocs (TFLite interpreters: XNNPACK-packed weights, tensor arenas; the models'
	// private copies), thread stacks.
	OtherAnon float64 `json:"other_anon_mib"`
	// OtherFile is every other file mapping (models mapped by a delegate, locale files).
	OtherFile float64 `json:"other_file_mib"`
}

// Memory reports where the process's memory is now. It walks /proc/self/smaps and stops
// the world briefly (runtime.ReadMemStats): for /status, not for a hot path.
func (e *Engine) Memory() MemoryStatus {
	var st MemoryStatus
	const mib = 1 << 20
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	st.GoHeapInuse = float64(ms.HeapInuse) / mib
	st.GoHeapFree = float64(ms.HeapIdle-ms.HeapReleased) / mib
	st.GoRuntime = float64(ms.Sys-ms.HeapReleased) / mib
	st.Guest = float64(e.rt.GuestResident()) / mib
	st.GuestMemories = e.rt.LiveMemories()
	exe, _ := os.Readlink("/proc/self/exe")
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return st
	}
	defer f.Close()
	var anon float64
	var cat *float64
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if !strings.HasSuffix(fields[0], ":") { // a mapping's header: range perms offset dev inode [path]
			path := ""
			if len(fields) >= 6 {
				path = strings.Join(fields[5:], " ")
			}
			perms := ""
			if len(fields) > 1 {
				perms = fields[1]
			}
			switch {
			case path == "" && strings.Contains(perms, "x"):
				cat = &st.CompiledCode
			case path == "":
				cat = &anon
			case path == exe:
				cat = &st.Binary
			case strings.Contains(path, ".so"):
				cat = &st.Libraries
			case path == "[heap]":
				cat = &st.CHeap
			case strings.HasPrefix(path, "["):
				cat = &anon // [stack], [vvar], [vdso]
			default:
				cat = &st.OtherFile
			}
			continue
		}
		if fields[0] == "Rss:" && cat != nil && len(fields) >= 2 {
			kb, _ := strconv.ParseFloat(fields[1], 64)
			*cat += kb / 1024
			st.RSS += kb / 1024
		}
	}
	// Guest memories and the Go runtime's mappings are anonymous mappings too.
	st.OtherAnon = max(0, anon-st.Guest-st.GoRuntime)
	return st
}
