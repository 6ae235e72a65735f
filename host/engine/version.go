package engine

import (
	"strconv"
	"strings"
)

// compareVersions orders two plugin versions by semantic versioning 2.0.0 precedence
// (1.0.0-rc.1 < 1.0.0 < 1.0.1 < 1.10.0; build metadata after + is ignored), accepting a
// leading "v" and a missing minor or patch ("1.2" is 1.2.0). ok is false when either is not
// such a version.
func compareVersions(a, b string) (c int, ok bool) {
	va, oka := parseVersion(a)
	vb, okb := parseVersion(b)
	if !oka || !okb {
		return 0, false
	}
	for i := range 3 {
		if va.num[i] != vb.num[i] {
			return cmpInt(va.num[i], vb.num[i]), true
		}
	}
	// A version without a pre-release is higher than the same one with one.
	switch {
	case len(va.pre) == 0 && len(vb.pre) == 0:
		return 0, true
	case len(va.pre) == 0:
		return 1, true
	case len(vb.pre) == 0:
		return -1, true
	}
	for i := 0; i < len(va.pre) && i < len(vb.pre); i++ {
		x, y := va.pre[i], vb.pre[i]
		nx, ex := strconv.ParseUint(x, 10, 64)
		ny, ey := strconv.ParseUint(y, 10, 64)
		switch {
		case ex == nil && ey == nil:
			if nx != ny {
				return cmpInt(nx, ny), true
			}
		case ex == nil: // numeric identifiers are lower than alphanumeric ones
			return -1, true
		case ey == nil:
			return 1, true
		case x != y:
			return strings.Compare(x, y), true
		}
	}
	return cmpInt(uint64(len(va.pre)), uint64(len(vb.pre))), true
}

type version struct {
	num [3]uint64
	pre []string
}

func parseVersion(s string) (version, bool) {
	var v version
	s = strings.TrimPrefix(s, "v")
	s, _, _ = strings.Cut(s, "+")
	core, pre, hasPre := strings.Cut(s, "-")
	parts := strings.Split(core, ".")
	if len(parts) > 3 {
		return v, false
	}
	for i, p := range parts {
		n, err := strconv.ParseUint(p, 10, 64)
		if err != nil || p == "" || (len(p) > 1 && p[0] == '0') {
			return v, false
		}
		v.num[i] = n
	}
	if hasPre {
		v.pre = strings.Split(pre, ".")
		for _, id := range v.pre {
			if id == "" {
				return v, false
			}
		}
	}
	return v, true
}

func cmpInt(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
