package wave

import (
	"time"

	"github.com/ens-sante/ens/provisioning"
)

// scheduleChunks cuts ids (created after `before` others of the wave) into
// chunks of at most size accounts, each given when it may be dispatched.
func scheduleChunks(w *provisioning.Wave, before int64, ids []int64, size int) []provisioning.Chunk {
	start := w.LaunchedAt
	if w.StartAt != nil {
		start = *w.StartAt
	}
	var out []provisioning.Chunk
	for i := 0; i < len(ids); {
		n := min(size, len(ids)-i)
		day := int64(0)
		if w.PerDay != nil {
			pos := before + int64(i)
			day = pos / *w.PerDay
			n = int(min(int64(n), (day+1)**w.PerDay-pos)) // stop at the day's end
		}
		c := provisioning.Chunk{WaveID: w.ID, FirstAccountID: ids[i], LastAccountID: ids[i+n-1]}
		if w.StartAt != nil || day > 0 {
			c.NotBefore = start.Add(time.Duration(day) * 24 * time.Hour)
		}
		out = append(out, c)
		i += n
	}
	return out
}

// sameTime reports whether two optional instants are the same.
func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}
