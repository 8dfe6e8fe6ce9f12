package jobs

import (
	"os"
	"runtime/debug"
)

// Garbage-collector settings for a worker process, unless GOGC or
// GOMEMLIMIT say otherwise.
const (
	workerGCPercent   = 800
	workerMemoryLimit = 2 << 30 // bytes
)

// TuneGC sets the garbage collector for a worker process. A worker's live
// heap is small while it allocates fast, so with Go's default of collecting
// each time the heap doubles it collects every few pages: measured on 2
// cores, when gofpdf still compressed each page with a fresh zlib writer,
// letter throughput went from 1,758 to 4,350 pages/s with GOGC=800
// (BenchmarkLetters); pages are uncompressed since, which cut the allocation
// twentyfold. The memory limit caps what that trade costs.
func TuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(workerGCPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(workerMemoryLimit)
	}
}
