package server

import "testing"

// TestRedact: what a caller without the observe scope sees of an error text.
func TestRedact(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`loading /srv/edgehost/plugins/pre.wasm: bad magic`, `loading <path>: bad magic`},
		{`model "/etc/passwd" is neither a pipeline nor a model`, `model "<path>" is neither a pipeline nor a model`},
		{`plugin pre (sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08) trapped`, `plugin pre (sha256 <hash>) trapped`},
		{`bad input: image of 3x2 pixels`, `bad input: image of 3x2 pixels`},
		{`a/relative/path stays`, `a/relative/path stays`},
	} {
		if got := redact(tc.in); got != tc.want {
			t.Errorf("redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
