package server_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgehost/edgehost/abi"
	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/host/internal/testplugins"
)

// badInputCase is one malformed request and what the server must answer: a 4xx status,
// a JSON body {"error", "class"}, and an error message containing every string in want.
type badInputCase struct {
	name  string
	small bool // send to the errorConfig server (max_body_bytes = 100000) instead of shipped
	path  string
	ct    string
	hdr   map[string]string
	body  []byte
	code  int
	class string
	want  []string
}

func readModel(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(testplugins.Model(name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// kserveJSON is a KServe v2 JSON request with the given inputs.
func kserveJSON(inputs ...map[string]any) []byte {
	b, err := json.Marshal(map[string]any{"inputs": inputs})
	if err != nil {
		panic(err)
	}
	return b
}

// kserveBinary is a KServe v2 binary-extension request: the JSON header, then bin. It
// returns the body and the Inference-Header-Content-Length header.
func kserveBinary(inputs []map[string]any, bin []byte) ([]byte, map[string]string) {
	hdr, err := json.Marshal(map[string]any{"inputs": inputs})
	if err != nil {
		panic(err)
	}
	return append(hdr, bin...), map[string]string{"Inference-Header-Content-Length": strconv.Itoa(len(hdr))}
}

func binInput(name, dtype string, shape []int, size any) map[string]any {
	return map[string]any{"name": name, "datatype": dtype, "shape": shape,
		"parameters": map[string]any{"binary_data_size": size}}
}

// flip returns a copy of b with count bytes from off on inverted (XOR mask).
func flip(b []byte, off, count int, mask byte) []byte {
	c := append([]byte(nil), b...)
	for i := off; i < off+count && i < len(c); i++ {
		c[i] ^= mask
	}
	return c
}

// badInputCases builds the suite. Image cases are sent to both the Go and the C image
// decoders (pipelines classify-go and classify) and, for JPEG, to the detect pipeline.
func badInputCases(t *testing.T) []badInputCase {
	png := readModel(t, "peacock.png")
	jpg := readModel(t, "ssd_example.jpg")

	idat := bytes.Index(png, []byte("IDAT"))
	sos := bytes.Index(jpg, []byte{0xff, 0xda})
	if idat < 0 || sos < 0 {
		t.Fatalf("test images lack IDAT (%d) or SOS (%d)", idat, sos)
	}
	corruptPNG := flip(png, idat+20, 40, 0xff)   // deflate stream of the first IDAT chunk
	corruptJPEG := flip(jpg, sos+20, 2000, 0x55) // entropy-coded scan data

	rnd := make([]byte, 4096)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range rnd {
		rnd[i] = byte(r.Uint32())
	}
	rnd[0] = 0 // never a PNG or JPEG signature

	gif := []byte("GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")

	var cases []badInputCase
	type img struct {
		name string
		body []byte
		ct   string
		// expectations per decoder: Go (imagepre-go) and C (imagepre-c)
		goCode, cCode   int
		goClass, cClass string
		goWant, cWant   []string
	}
	imgs := []img{
		{"empty body", nil, "image/png", 400, 400, "bad_input", "bad_input",
			[]string{"empty request body"}, []string{"empty request body"}},
		{"truncated PNG", png[:1000], "image/png", 400, 400, "bad_input", "bad_input",
			[]string{"imagepre-go@", "cannot decode image", "png: truncated"}, []string{"imagepre-c@", "png: truncated"}},
		{"truncated JPEG", jpg[:len(jpg)/2], "image/jpeg", 400, 400, "bad_input", "bad_input",
			[]string{"imagepre-go@", "cannot decode image", "invalid JPEG format"}, []string{"imagepre-c@", "jpeg: truncated"}},
		{"corrupt PNG IDAT", corruptPNG, "image/png", 400, 400, "bad_input", "bad_input",
			[]string{"imagepre-go@", "cannot decode image", "png: CRC mismatch in IDAT"}, []string{"imagepre-c@", "png: CRC mismatch in IDAT"}},
		{"corrupt JPEG scan", corruptJPEG, "image/jpeg", 400, 400, "bad_input", "bad_input",
			[]string{"imagepre-go@", "cannot decode image", "invalid JPEG format"}, []string{"imagepre-c@", "jpeg:", "corrupt"}},
		{"random bytes", rnd, "application/octet-stream", 415, 400, "unsupported", "bad_input",
			[]string{"not a JPEG or PNG"}, []string{"not a PNG or JPEG"}},
		{"text body", []byte("hello, this is plain text and not an image\n"), "text/plain", 415, 400, "unsupported", "bad_input",
			[]string{"not a JPEG or PNG"}, []string{"not a PNG or JPEG"}},
		{"GIF", gif, "image/gif", 415, 415, "unsupported", "unsupported",
			[]string{"not a JPEG or PNG"}, []string{"GIF", "send PNG or JPEG"}},
	}
	for _, im := range imgs {
		cases = append(cases,
			badInputCase{name: "raw classify-go/" + im.name, path: "/v1/pipelines/classify-go", ct: im.ct, body: im.body,
				code: im.goCode, class: im.goClass, want: im.goWant},
			badInputCase{name: "raw classify/" + im.name, path: "/v1/pipelines/classify", ct: im.ct, body: im.body,
				code: im.cCode, class: im.cClass, want: im.cWant})
	}
	cases = append(cases,
		badInputCase{name: "raw detect/truncated JPEG", path: "/v1/pipelines/detect", ct: "image/jpeg", body: jpg[:1000],
			code: 400, class: "bad_input", want: []string{"imagepre-c@", "jpeg: truncated"}},
		badInputCase{name: "raw detect/corrupt JPEG scan", path: "/v1/pipelines/detect", ct: "image/jpeg", body: corruptJPEG,
			code: 400, class: "bad_input", want: []string{"imagepre-c@", "jpeg:"}},
		badInputCase{name: "raw oversized body", small: true, path: "/v1/pipelines/classify", ct: "image/png",
			body: make([]byte, 200000), code: 413, class: "too_large", want: []string{"request body too large"}},
		badInputCase{name: "kserve oversized body", small: true, path: "/v2/models/classify/infer", ct: "application/json",
			body: kserveJSON(map[string]any{"name": "input", "shape": []int{50000}, "datatype": "UINT8", "data": make([]int, 50000)}),
			code: 413, class: "too_large", want: []string{"request body too large"}},
		badInputCase{name: "raw unknown pipeline", path: "/v1/pipelines/nope", ct: "image/png", body: png,
			code: 404, class: "not_found", want: []string{`pipeline "nope"`}},
	)

	const classify = "/v2/models/classify-go/infer"
	const mobilenet = "/v2/models/mobilenet/infer"
	const pixels = 224 * 224 * 3
	k := func(name, path string, body []byte, hdr map[string]string, code int, class string, want ...string) badInputCase {
		ct := "application/json"
		if hdr != nil {
			ct = "application/octet-stream"
		}
		return badInputCase{name: "kserve " + name, path: path, ct: ct, hdr: hdr, body: body, code: code, class: class, want: want}
	}
	bytesElem := binary.LittleEndian.AppendUint32(nil, uint32(len(png)))
	bytesElem = append(bytesElem, png...)

	fp32Body, fp32Hdr := kserveBinary([]map[string]any{binInput("Placeholder", "FP32", []int{1, 224, 224, 3}, 4*pixels)}, make([]byte, 4*pixels))
	shapeBody, shapeHdr := kserveBinary([]map[string]any{binInput("Placeholder", "UINT8", []int{1, 112, 112, 3}, 112*112*3)}, make([]byte, 112*112*3))
	nameBody, nameHdr := kserveBinary([]map[string]any{binInput("image", "UINT8", []int{1, 224, 224, 3}, pixels)}, make([]byte, pixels))
	twoBody, twoHdr := kserveBinary([]map[string]any{binInput("Placeholder", "UINT8", []int{1, 224, 224, 3}, pixels),
		binInput("Placeholder", "UINT8", []int{1, 224, 224, 3}, pixels)}, make([]byte, 2*pixels))
	sizeBody, sizeHdr := kserveBinary([]map[string]any{binInput("input", "BYTES", []int{1}, 100000)}, bytesElem)
	leftBody, leftHdr := kserveBinary([]map[string]any{binInput("input", "BYTES", []int{1}, len(bytesElem))}, append(append([]byte(nil), bytesElem...), "extra"...))
	prefixElem := append(binary.LittleEndian.AppendUint32(nil, 999), png...)
	prefixBody, prefixHdr := kserveBinary([]map[string]any{binInput("input", "BYTES", []int{1}, len(prefixElem))}, prefixElem)
	shortBody, shortHdr := kserveBinary([]map[string]any{binInput("input", "BYTES", []int{1}, 2)}, []byte{1, 0})
	dtBinBody, dtBinHdr := kserveBinary([]map[string]any{binInput("Placeholder", "UINT8", []int{1, 224, 224, 3}, 1000)}, make([]byte, 1000))
	okBody, _ := kserveBinary([]map[string]any{binInput("input", "BYTES", []int{1}, len(bytesElem))}, bytesElem)
	hugeHdr, _ := json.Marshal(map[string]any{"inputs": []any{binInput("input", "BYTES", []int{1}, 1e19)}})
	hugeBody := append(append([]byte(nil), hugeHdr...), bytesElem...)
	negBody, negHdr := kserveBinary([]map[string]any{binInput("input", "BYTES", []int{1}, -4)}, bytesElem)
	hlTooBig := map[string]string{"Inference-Header-Content-Length": strconv.Itoa(len(okBody) + 100)}
	hlNaN := map[string]string{"Inference-Header-Content-Length": "twelve"}
	hlNeg := map[string]string{"Inference-Header-Content-Length": "-5"}
	pngHead := make([]int, 100)
	for i := range pngHead {
		pngHead[i] = int(png[i])
	}
	u8 := func(shape []int, data any) []byte {
		return kserveJSON(map[string]any{"name": "input", "shape": shape, "datatype": "UINT8", "data": data})
	}

	cases = append(cases,
		k("malformed JSON", classify, []byte(`{"inputs": [{"name": "input", "shape": [3], `), nil, 400, "bad_input", "malformed inference request JSON"),
		k("not JSON at all", classify, png, nil, 400, "bad_input", "malformed inference request JSON"),
		k("empty body", classify, nil, nil, 400, "bad_input", "malformed inference request JSON"),
		k("empty inputs", classify, []byte(`{"inputs":[]}`), nil, 400, "bad_input", "no inputs"),
		k("missing inputs", classify, []byte(`{"id":"x"}`), nil, 400, "bad_input", "no inputs"),
		k("missing name", classify, []byte(`{"inputs":[{"shape":[3],"datatype":"UINT8","data":[1,2,3]}]}`), nil, 400, "bad_input", "input 0 has no name"),
		k("missing shape", classify, []byte(`{"inputs":[{"name":"input","datatype":"UINT8","data":[1,2,3]}]}`), nil, 400, "bad_input", `input "input"`, "shape is missing"),
		k("negative dimension", classify, u8([]int{-3}, []int{1, 2, 3}), nil, 400, "bad_input", "negative dimension"),
		k("huge shape", classify, u8([]int{1 << 20, 1 << 20}, []int{1}), nil, 400, "bad_input", "too large"),
		k("neither data nor binary", classify, []byte(`{"inputs":[{"name":"input","shape":[3],"datatype":"UINT8"}]}`), nil, 400, "bad_input", "neither data nor binary_data_size"),
		k("data count mismatch", classify, u8([]int{10}, []int{1, 2, 3}), nil, 400, "bad_input", "data has 3 elements, shape says 10"),
		k("data too many elements", classify, u8([]int{2}, []int{1, 2, 3}), nil, 400, "bad_input", "shape says 2"),
		k("non-numeric UINT8", classify, u8([]int{3}, []any{"a", "b", "c"}), nil, 400, "bad_input", "UINT8 data must be numbers"),
		k("UINT8 300", classify, u8([]int{3}, []int{1, 300, 3}), nil, 400, "bad_input", "300 is not a valid UINT8"),
		k("UINT8 negative", classify, u8([]int{3}, []int{1, -1, 3}), nil, 400, "bad_input", "-1 is not a valid UINT8"),
		k("UINT8 fraction", classify, u8([]int{3}, []float64{1, 2.5, 3}), nil, 400, "bad_input", "2.5 is not a valid UINT8"),
		k("unsupported datatype", classify, []byte(`{"inputs":[{"name":"input","shape":[1],"datatype":"FP64","data":[1]}]}`), nil, 400, "bad_input", `unsupported datatype "FP64"`),
		k("BYTES data not strings", classify, []byte(`{"inputs":[{"name":"input","shape":[1],"datatype":"BYTES","data":[42]}]}`), nil, 400, "bad_input", "BYTES data must be strings"),
		k("pipeline wrong datatype", classify, []byte(`{"inputs":[{"name":"input","shape":[2],"datatype":"FP32","data":[1,2]}]}`), nil, 400, "bad_input", "a pipeline takes BYTES or UINT8 input, got FP32"),
		k("pipeline two BYTES elements", classify, []byte(`{"inputs":[{"name":"input","shape":[2],"datatype":"BYTES","data":["a","b"]}]}`), nil, 400, "bad_input", "one BYTES element"),
		k("two inputs to a pipeline", classify, kserveJSON(
			map[string]any{"name": "a", "shape": []int{1}, "datatype": "UINT8", "data": []int{1}},
			map[string]any{"name": "b", "shape": []int{1}, "datatype": "UINT8", "data": []int{2}}), nil, 400, "bad_input", "exactly one input", "got 2"),
		k("bare model wrong datatype", mobilenet, fp32Body, fp32Hdr, 400, "bad_input", `input "Placeholder"`, "datatype FP32, model wants UINT8"),
		k("bare model wrong shape", mobilenet, shapeBody, shapeHdr, 400, "bad_input", "shape [1 112 112 3], model wants [1 224 224 3]"),
		k("bare model unknown input", mobilenet, nameBody, nameHdr, 400, "bad_input", `no input "image"`, "Placeholder"),
		k("bare model two inputs", mobilenet, twoBody, twoHdr, 400, "bad_input", "takes 1 inputs, got 2"),
		k("binary size does not match dtype and shape", mobilenet, dtBinBody, dtBinHdr, 400, "bad_input", "1000 bytes of binary data", "want 150528"),
		k("binary_data_size larger than body", classify, sizeBody, sizeHdr, 400, "bad_input", "binary_data_size 100000 does not fit"),
		k("binary_data_size negative", classify, negBody, negHdr, 400, "bad_input", "binary_data_size -4 does not fit"),
		badInputCase{name: "kserve binary_data_size past the int range", path: classify, ct: "application/octet-stream", body: hugeBody,
			hdr:  map[string]string{"Inference-Header-Content-Length": strconv.Itoa(len(hugeHdr))},
			code: 400, class: "bad_input", want: []string{"binary_data_size"}},
		badInputCase{name: "kserve trailing data after the JSON", path: classify, ct: "application/json",
			body: append(u8([]int{3}, []int{1, 2, 3}), " garbage {{"...), code: 400, class: "bad_input", want: []string{"after"}},
		k("header length larger than body", classify, okBody, hlTooBig, 400, "bad_input", "Inference-Header-Content-Length is", "body has only"),
		k("header length not a number", classify, okBody, hlNaN, 400, "bad_input", `invalid Inference-Header-Content-Length header "twelve"`),
		k("header length negative", classify, okBody, hlNeg, 400, "bad_input", `invalid Inference-Header-Content-Length header "-5"`),
		k("binary data left over", classify, leftBody, leftHdr, 400, "bad_input", "5 bytes of binary data are not claimed"),
		k("BYTES bad length prefix", classify, prefixBody, prefixHdr, 400, "bad_input", "length prefix 999 does not match"),
		k("BYTES missing length prefix", classify, shortBody, shortHdr, 400, "bad_input", "missing its 4-byte length prefix"),
		k("unknown model", "/v2/models/nope/infer", kserveJSON(map[string]any{"name": "input", "shape": []int{1}, "datatype": "UINT8", "data": []int{1}}),
			nil, 404, "not_found", `model "nope"`),
		badInputCase{name: "kserve wrong Content-Type", path: classify, ct: "application/xml", body: u8([]int{1}, []int{1}),
			code: 400, class: "bad_input", want: []string{`Content-Type "application/xml"`, "Inference-Header-Content-Length"}},
		k("truncated PNG through the pipeline", classify, u8([]int{100}, pngHead), nil, 400, "bad_input", "imagepre-go@", "cannot decode image"),
	)
	return cases
}

// TestBadInput: every malformed request gets a 4xx with a JSON error that says what is wrong,
// and the server keeps classifying afterwards.
func TestBadInput(t *testing.T) {
	shippedURL := shipped(t)
	cases := badInputCases(t)
	var smallURL string
	for _, c := range cases {
		if c.small && smallURL == "" {
			smallURL = start(t, errorConfig(t))
		}
	}
	if len(cases) < 22 {
		t.Fatalf("only %d cases", len(cases))
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			url := shippedURL
			if c.small {
				url = smallURL
			}
			code, h, b := post(t, url+c.path, c.ct, c.body, c.hdr)
			if code < 400 || code > 499 {
				t.Fatalf("status %d, want 4xx (%d): %.300s", code, c.code, b)
			}
			if code != c.code {
				t.Errorf("status %d, want %d: %.300s", code, c.code, b)
			}
			if ct := h.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			if h.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("no X-Content-Type-Options: nosniff")
			}
			var e map[string]any
			if err := json.Unmarshal(b, &e); err != nil {
				t.Fatalf("body is not JSON (%v): %.300s", err, b)
			}
			msg, _ := e["error"].(string)
			class, _ := e["class"].(string)
			if msg == "" || class == "" {
				t.Fatalf("body lacks a non-empty error or class: %s", b)
			}
			if class != c.class {
				t.Errorf("class %q, want %q (%s)", class, c.class, msg)
			}
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not say %q", msg, w)
				}
			}
		})
	}
	t.Run("still serves", func(t *testing.T) {
		img := readModel(t, "peacock.png")
		for _, p := range []string{"classify", "classify-go"} {
			code, _, b := post(t, shippedURL+"/v1/pipelines/"+p, "image/png", img, nil)
			if code != http.StatusOK || top1(t, b) != "peacock" {
				t.Fatalf("%s after bad input: %d %s", p, code, b)
			}
		}
		jpg := readModel(t, "ssd_example.jpg")
		code, _, b := post(t, shippedURL+"/v1/pipelines/detect", "image/jpeg", jpg, nil)
		if code != http.StatusOK {
			t.Fatalf("detect after bad input: %d %s", code, b)
		}
		body, hdr := kserveBinary([]map[string]any{binInput("input", "BYTES", []int{1}, len(img)+4)},
			append(binary.LittleEndian.AppendUint32(nil, uint32(len(img))), img...))
		code, _, b = post(t, shippedURL+"/v2/models/classify/infer", "application/octet-stream", body, hdr)
		if code != http.StatusOK || !strings.Contains(string(b), "peacock") {
			t.Fatalf("kserve after bad input: %d %.300s", code, b)
		}
	})
}

// slowConfig: the shipped config plus pipeline "one" (one worker, good plugins, a queue
// timeout of 3 s) and pipeline "big" (one worker, an 8 MiB result).
func slowConfig(t *testing.T) *config.Config {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(testplugins.Root, "config.toml"))
	if err != nil {
		t.Fatal(err)
	}
	good := testplugins.Hostile(t, "GOOD", abi.KindBoth)
	extra := fmt.Sprintf(`
[pipelines.one]
model = "mobilenet"
workers = 1
queue_timeout = "3s"
[pipelines.one.pre]
path = %q
[pipelines.one.post]
path = %q

[pipelines.big]
model = "mobilenet"
workers = 1
queue_timeout = "3s"
[pipelines.big.pre]
path = %q
[pipelines.big.post]
path = %q
`, good, good, good, testplugins.Hostile(t, "BIG_RESULT", abi.KindBoth))
	text := strings.ReplaceAll(string(src), `cache_dir = ".cache/wazero"`, `cache_dir = ""`)
	text = strings.Replace(text, `transfer_timeout = "5s"`, `transfer_timeout = "2s"`, 1)
	cfg, err := config.Parse(filepath.Join(testplugins.Root, "config.toml"), []byte(text+extra))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.TransferTimeout.Duration != 2*time.Second {
		t.Fatalf("transfer_timeout %v, want the 2s set here", cfg.Server.TransferTimeout)
	}
	return cfg
}

// TestSlowClients: a body sent at 1 byte / 0.5 s and a client that never reads an 8 MiB
// result hold no worker: other requests to the same one-worker pipeline succeed meanwhile,
// health answers, and the slow body is cut off after the transfer deadline.
func TestSlowClients(t *testing.T) {
	if testing.Short() {
		t.Skip("-short (the race run): deadlines of seconds; the full run has it")
	}
	url := start(t, slowConfig(t))
	host := strings.TrimPrefix(url, "http://")
	healthWorst := func(d time.Duration) time.Duration {
		var worst time.Duration
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
			start := time.Now()
			resp, err := http.Get(url + "/v2/health/live")
			if err != nil {
				t.Errorf("health: %v", err)
				return worst
			}
			resp.Body.Close()
			worst = max(worst, time.Since(start))
		}
		return worst
	}
	t.Logf("health worst, idle: %v", healthWorst(300*time.Millisecond))
	t.Run("slow body", func(t *testing.T) {
		conn, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "POST /v1/pipelines/one HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 100\r\n\r\n")
		start := time.Now()
		cut := make(chan time.Duration, 1)
		go func() {
			for i := 0; i < 99; i++ {
				if _, err := conn.Write([]byte{1}); err != nil {
					return
				}
				time.Sleep(500 * time.Millisecond)
			}
		}()
		go func() {
			// The server answers (400) or closes the connection when it cuts the body off.
			b := make([]byte, 512)
			n, _ := conn.Read(b)
			t.Logf("slow client got %q", b[:min(n, 120)])
			cut <- time.Since(start)
		}()
		time.Sleep(700 * time.Millisecond) // the slow body is being read
		for i := 0; i < 3; i++ {
			code, _, b := post(t, url+"/v1/pipelines/one", "image/png", []byte{42}, nil)
			if code != http.StatusOK {
				t.Fatalf("request %d beside a slow body: %d %s", i, code, b)
			}
		}
		t.Logf("health worst beside a slow body: %v", healthWorst(500*time.Millisecond))
		select {
		case d := <-cut:
			t.Logf("slow body cut off after %v", d)
			if d > 2*time.Second+5*time.Second {
				t.Errorf("slow body held for %v", d)
			}
		case <-time.After(2*time.Second + 10*time.Second):
			t.Fatal("slow body never cut off")
		}
	})
	t.Run("chunked body that stalls", func(t *testing.T) {
		// No length: the deadline moves with the bytes received, so a stall is cut after
		// transfer_timeout (2 s here) plus the first chunk at the minimum rate (1 s), not after
		// max_body_bytes at that rate (minutes).
		conn, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		start := time.Now()
		fmt.Fprintf(conn, "POST /v1/pipelines/one HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffff\r\nabc")
		_ = conn.SetReadDeadline(time.Now().Add(60 * time.Second))
		b := make([]byte, 512)
		n, _ := conn.Read(b)
		took := time.Since(start)
		t.Logf("stalled chunked body cut off after %v: %q", took, b[:min(n, 160)])
		if took > 2*time.Second+time.Second+5*time.Second {
			t.Errorf("a stalled chunked body held the connection for %v", took)
		}
		// A chunked body that keeps coming is read whole: 300 KiB, several chunks.
		req, _ := http.NewRequest("POST", url+"/v1/pipelines/one", io.MultiReader(bytes.NewReader([]byte{42}), bytes.NewReader(make([]byte, 300<<10))))
		req.Header.Set("Content-Type", "image/png")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || req.ContentLength != 0 {
			t.Errorf("chunked body of 300 KiB: %d (content length %d)", resp.StatusCode, req.ContentLength)
		}
	})
	t.Run("client gone mid-body", func(t *testing.T) {
		badInputs := func() int {
			resp, err := http.Get(url + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(b), `edgehost_errors_total{class="internal",target="one"}`) {
				t.Fatalf("a body cut short by the client counted as internal:\n%s", b)
			}
			m := regexp.MustCompile(`edgehost_errors_total\{class="bad_input",target="one"\} (\d+)`).FindSubmatch(b)
			if m == nil {
				return 0
			}
			n, _ := strconv.Atoi(string(m[1]))
			return n
		}
		before := badInputs()
		conn, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "POST /v1/pipelines/one HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 1000\r\n\r\n%s", make([]byte, 100))
		time.Sleep(200 * time.Millisecond)
		conn.Close()
		// A body shorter than its Content-Length is a malformed request (bad_input, 400),
		// whether the client closed or only half-closed: never an internal error.
		deadline := time.Now().Add(10 * time.Second)
		for badInputs() != before+1 {
			if time.Now().After(deadline) {
				t.Fatalf("no bad_input error counted (%d before)", before)
			}
			time.Sleep(50 * time.Millisecond)
		}
		// Half-closed: the client is still there, reading, and gets a 400 naming the lengths.
		hc, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		defer hc.Close()
		fmt.Fprintf(hc, "POST /v1/pipelines/one HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 1000\r\n\r\n%s", make([]byte, 100))
		hc.(*net.TCPConn).CloseWrite()
		_ = hc.SetReadDeadline(time.Now().Add(30 * time.Second))
		ans, _ := io.ReadAll(hc)
		if !strings.HasPrefix(string(ans), "HTTP/1.1 400") || !strings.Contains(string(ans), "100 bytes of the 1000") {
			t.Fatalf("half-closed short body: %q", ans)
		}
	})
	t.Run("slow reader", func(t *testing.T) {
		conn, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		// Ask for the 8 MiB result and never read it.
		fmt.Fprintf(conn, "POST /v1/pipelines/big HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 1\r\n\r\n\x2a")
		time.Sleep(500 * time.Millisecond)
		for i := 0; i < 3; i++ {
			start := time.Now()
			code, _, b := post(t, url+"/v1/pipelines/big", "image/png", []byte{42}, nil)
			if code != http.StatusOK || len(b) != 8<<20 {
				t.Fatalf("request %d beside a slow reader: %d, %d bytes %.200s", i, code, len(b), b)
			}
			t.Logf("8 MiB result beside a slow reader in %v", time.Since(start))
		}
	})
}
