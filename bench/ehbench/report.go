package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"
)

func pct(xs []time.Duration, p float64) time.Duration {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func walls(ss []sample) (w, c []time.Duration) {
	for _, s := range ss {
		w, c = append(w, s.wall), append(c, s.cpu)
	}
	return
}

// p50 of wall and CPU time.
func p50(ss []sample) (wall, cpu time.Duration) {
	w, c := walls(ss)
	return pct(w, 50), pct(c, 50)
}

func ms(d time.Duration) string {
	v := float64(d) / 1e6
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func ratio(a, b time.Duration) string {
	if b <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f×", float64(a)/float64(b))
}

type report struct {
	settings
	started            time.Time
	elapsed            time.Duration
	loadStart, loadEnd string
	inproc             []*caseResult
	http               *httpResult
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "model name") {
			if _, v, ok := strings.Cut(l, ":"); ok {
				return strings.TrimSpace(v)
			}
		}
	}
	return "?"
}

func pyVersions(python string) string {
	out, err := exec.Command(python, "-c", `import importlib.metadata as m, sys
print("Python %d.%d.%d" % sys.version_info[:3], *("%s %s" % (p, m.version(p)) for p in ("pillow", "numpy", "ai-edge-litert", "fastapi", "uvicorn")), sep=", ")`).Output()
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(out))
}

func (r *report) write(w io.Writer) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("### edgehost against what a user would pick instead (`make bench`, %s)\n\n", r.started.UTC().Format("2006-01-02 15:04 UTC"))
	p("Machine: %d CPUs (%s), load average %s at start, %s at end; %s, %s. ", runtime.NumCPU(), cpuModel(), r.loadStart, r.loadEnd, runtime.Version(), pyVersions(r.python))
	if len(r.inproc) > 0 {
		p("In process: %d interleaved rounds (order rotated every round), p50; CPU time of the measuring thread in brackets. ", r.rounds)
	}
	p("Whole run %.0f s.\n\n", r.elapsed.Seconds())

	if len(r.inproc) > 0 {
		r.writeInProcess(w)
	}
	if r.http != nil {
		r.http.write(w, r.settings)
	}
}

func (r *report) writeInProcess(w io.Writer) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("**Pre stage** (bytes of the file → the model's input tensor), ms p50 wall [CPU]; ratios of wall p50 [CPU p50]:\n\n")
	p("| workload | imagepre-c | imagepre-go | Pillow+draft | native Go | C / Pillow | Go / Pillow | C / native | Go / native | MAD vs Pillow C/Go/native |\n")
	p("|---|---|---|---|---|---|---|---|---|---|\n")
	for _, c := range r.inproc {
		var wl, cp [nImpl]time.Duration
		for i := range nImpl {
			wl[i], cp[i] = p50(c.pre[i])
		}
		cell := func(i int) string { return fmt.Sprintf("%s [%s]", ms(wl[i]), ms(cp[i])) }
		rat := func(a, b int) string { return fmt.Sprintf("**%s** [%s]", ratio(wl[a], wl[b]), ratio(cp[a], cp[b])) }
		p("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %.1f / %.1f / %.1f |\n", c.w.name, cell(implC), cell(implGo), cell(implPy), cell(implNative),
			rat(implC, implPy), rat(implGo, implPy), rat(implC, implNative), rat(implGo, implNative), c.mad[implC], c.mad[implGo], c.mad[implNative])
	}
	p("\n**Whole request in process** (edgehost: body → guest memory, pre, TFLite invoke, post plugin, as host/pipeline's worker; Python: Pillow pre, set_tensor + invoke + numpy post), ms p50 wall [CPU]:\n\n")
	p("| workload | edgehost C plugins | edgehost Go plugins | Pillow + LiteRT | native Go + TFLite | C / Python | Go / Python | C / native | pre share of edgehost C / Go | invoke ms: edgehost (bound in guest memory) / plain interpreter / LiteRT |\n")
	p("|---|---|---|---|---|---|---|---|---|---|\n")
	for _, c := range r.inproc {
		var wl, cp, pre, inv [nImpl]time.Duration
		for i := range nImpl {
			wl[i], cp[i] = p50(c.total[i])
			pre[i], _ = p50(c.pre[i])
			inv[i], _ = p50(c.inv[i])
		}
		cell := func(i int) string { return fmt.Sprintf("%s [%s]", ms(wl[i]), ms(cp[i])) }
		rat := func(a, b int) string { return fmt.Sprintf("**%s** [%s]", ratio(wl[a], wl[b]), ratio(cp[a], cp[b])) }
		name := c.w.name
		switch {
		case c.w.post == "":
			name += " (no post plugin for this model: pre + invoke)"
		case c.w.postC != "" && !strings.HasSuffix(c.w.postC, "-c"):
			name += fmt.Sprintf(" (C column: imagepre-c + %s)", c.w.postC)
		}
		share := func(i int) string {
			if wl[i] == 0 {
				return "—"
			}
			return fmt.Sprintf("%.0f%%", 100*float64(pre[i])/float64(wl[i]))
		}
		p("| %s | %s | %s | %s | %s | %s | %s | %s | %s / %s | %s / %s / %s |\n", name, cell(implC), cell(implGo), cell(implPy), cell(implNative),
			rat(implC, implPy), rat(implGo, implPy), rat(implC, implNative), share(implC), share(implGo), ms(inv[implC]), ms(inv[implNative]), ms(inv[implPy]))
	}
	checked, zc := true, true
	for _, c := range r.inproc {
		checked = checked && (c.pipelineChecked || c.w.post == "")
		zc = zc && c.zeroCopy
	}
	p("\nMAD: mean |tensor − Pillow's tensor| in pixel units (0–255), from one call each (Pillow's draft decodes at reduced DCT scale, so some difference is expected). ")
	if checked {
		p("Every workload with a post plugin returned the same bytes from host/pipeline itself as from the bench's worker. ")
	}
	if zc {
		p("Zero copy between guest memory and TFLite. ")
	}
	p("The bench raises the plugins' budgets (C 256 MiB, Go 512 MiB, 120 s) so that a loaded machine measures speed, not budget enforcement; imagepre-c's defaults (50 Mpx, DCT-domain decoding) take the 12 Mpx frame as shipped.\n")
}
