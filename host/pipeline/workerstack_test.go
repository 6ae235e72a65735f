package pipeline

import (
	"sync"
	"testing"
)

// TestWorkerStackLIFO: the worker put back last is taken first (its memory is the warmest),
// and under concurrent use every worker is handed to one taker at a time.
func TestWorkerStackLIFO(t *testing.T) {
	a, b, c := &worker{}, &worker{}, &worker{}
	s := workerStack{tokens: make(chan struct{}, 3)}
	s.put(a)
	s.put(b)
	s.put(c)
	<-s.tokens
	if w := s.take(); w != c {
		t.Fatal("take did not return the worker put back last")
	}
	s.put(c)
	for range 5 { // a lone client: always the same worker
		<-s.tokens
		w := s.take()
		if w != c {
			t.Fatal("a lone client's requests moved to another worker")
		}
		s.put(w)
	}

	var mu sync.Mutex
	busy := map[*worker]bool{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				<-s.tokens
				w := s.take()
				mu.Lock()
				if busy[w] {
					mu.Unlock()
					t.Error("a worker was handed to two takers at once")
					return
				}
				busy[w] = true
				mu.Unlock()
				mu.Lock()
				busy[w] = false
				mu.Unlock()
				s.put(w)
			}
		}()
	}
	wg.Wait()
	if len(s.tokens) != 3 || len(s.free) != 3 {
		t.Fatalf("%d tokens, %d free workers after the load, want 3 and 3", len(s.tokens), len(s.free))
	}
}
