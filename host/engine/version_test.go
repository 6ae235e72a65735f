package engine

import "testing"

// TestCompareVersions: semantic versioning precedence, as rollback protection uses it.
func TestCompareVersions(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
		ok   bool
	}{
		{"1.0.0", "2.0.0", -1, true},
		{"2.0.0", "1.0.0", 1, true},
		{"1.10.0", "1.9.0", 1, true},
		{"1.0.0", "1.0.0+build.5", 0, true},
		{"v1.2", "1.2.0", 0, true},
		{"1.0.0-rc.1", "1.0.0", -1, true},
		{"1.0.0-alpha", "1.0.0-alpha.1", -1, true},
		{"1.0.0-alpha.1", "1.0.0-alpha.beta", -1, true},
		{"1.0.0-beta.2", "1.0.0-beta.11", -1, true},
		{"1.0.0-rc.1", "1.0.0-beta.11", 1, true},
		{"1.0.0", "latest", 0, false},
		{"01.0.0", "1.0.0", 0, false},
		{"1.0.0.0", "1.0.0", 0, false},
	} {
		got, ok := compareVersions(c.a, c.b)
		if got != c.want || ok != c.ok {
			t.Errorf("compareVersions(%q, %q) = %d, %v; want %d, %v", c.a, c.b, got, ok, c.want, c.ok)
		}
	}
}
