package config

import (
	"fmt"
	"time"
)

// Sequences is a pipeline's [pipelines.NAME.sequences]: the bound on its stateful streams
// (requests carrying a sequence id; README "Sequences"). Each live sequence owns a worker
// (pre instance, interpreter, post instance) of its own, so Max bounds that memory.
type Sequences struct {
	// Max is the number of live sequences at once, all versions of the pipeline together;
	// a start past it is refused (HTTP 429, gRPC RESOURCE_EXHAUSTED). Default 64.
	Max int `toml:"max"`
	// IdleTimeout ends a sequence that received no request for this long. Default 30s.
	IdleTimeout Duration `toml:"idle_timeout"`
}

// MaxSequences caps sequences.max: each sequence holds an interpreter and two plugin
// instances.
const MaxSequences = 100000

// complete applies the defaults of [pipelines.NAME.sequences] and checks it.
func (s *Sequences) complete(pipeline string, bad func(msg string, key ...string)) {
	key := func(k string) []string { return []string{"pipelines", pipeline, "sequences", k} }
	if s.Max == 0 {
		s.Max = 64
	} else if s.Max < 0 || s.Max > MaxSequences {
		bad(fmt.Sprintf("max %d must be between 1 and %d", s.Max, MaxSequences), key("max")...)
	}
	if s.IdleTimeout.Duration == 0 {
		s.IdleTimeout.Duration = 30 * time.Second
	} else if s.IdleTimeout.Duration < 10*time.Millisecond {
		bad(fmt.Sprintf("idle_timeout %v is below 10ms", s.IdleTimeout.Duration), key("idle_timeout")...)
	}
}
