package server_test

import (
	"bytes"
	"runtime"
	"strings"
	"testing"

	"github.com/edgehost/edgehost/host/server"
)

// TestJSONDataMemory: a 16 MB JSON body holding an 8M-element UINT8 array decodes with memory
// proportional to the body (it cost ~800 MB through []any).
func TestJSONDataMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("-short (the race run): a memory measurement; the full run has it")
	}
	if raceEnabled {
		t.Skip("the race detector's own allocations and 10x slowdown make the figure meaningless")
	}
	const n = 8 << 20
	var b bytes.Buffer
	b.WriteString(`{"inputs":[{"name":"x","datatype":"UINT8","shape":[` + "8388608" + `],"data":[`)
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('0' + byte(i%10))
	}
	b.WriteString(`]}]}`)
	body := b.Bytes()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	req, err := server.DecodeInferRequest(body, -1)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("%d-byte body: %d bytes allocated (%.1fx)", len(body), alloc, float64(alloc)/float64(len(body)))
	if alloc > 4*uint64(len(body)) {
		t.Errorf("decoding allocated %d bytes for a %d-byte body", alloc, len(body))
	}
	runtime.KeepAlive(req)
}

// TestJSONDataGrammar: the streaming number decoder accepts JSON's grammar and nothing else.
func TestJSONDataGrammar(t *testing.T) {
	req := func(data, shape string) string {
		return `{"inputs":[{"name":"x","datatype":"INT16","shape":` + shape + `,"data":` + data + `}]}`
	}
	for _, c := range []struct{ data, shape, want string }{
		{`[1, -2, [3, 4e2]]`, `[4]`, ""},
		{` [ [1,2] , [3,4] ] `, `[2,2]`, ""},
		{`7`, `[1]`, ""},
		{`[1,2,]`, `[2]`, "not valid JSON"},
		{`[,1]`, `[1]`, "not valid JSON"},
		{`[1 2]`, `[2]`, "not valid JSON"},
		{`[1,2`, `[2]`, "not valid JSON"},
		{`[01]`, `[1]`, "bad number"},
		{`[+1]`, `[1]`, "not valid JSON"},
		{`[1.]`, `[1]`, "bad number"},
		{`["1"]`, `[1]`, "must be numbers"},
		{`[null]`, `[1]`, "must be numbers"},
		{`[1,2,3]`, `[2]`, "shape says 2"},
		{`[1]`, `[2]`, "data has 1 elements"},
		{`[70000]`, `[1]`, "not a valid"},
		{`[[]]`, `[1]`, "data has 0 elements"},
	} {
		_, err := server.DecodeInferRequest([]byte(req(c.data, c.shape)), -1)
		// The request decoder rejects malformed JSON before the data decoder sees it.
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want) && !strings.Contains(err.Error(), "malformed")) {
			t.Errorf("%s shape %s: %v, want %q", c.data, c.shape, err, c.want)
		}
	}
}
