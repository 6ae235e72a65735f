// Command classify-go is an edgehost post plugin for classifiers: it dequantises the first
// output tensor, optionally applies softmax, and returns the top-k labels as JSON:
// {"top":[{"index":3,"label":"peacock","score":0.96}]}.
package main

import (
	"encoding/json"
	"math"
	"sort"

	"github.com/edgehost/edgehost/sdk/go/edgehost"
)

type params struct {
	Labels  []string `json:"labels"`
	TopK    int      `json:"top_k"`
	Softmax bool     `json:"softmax"`
}

type entry struct {
	Index int     `json:"index"`
	Label string  `json:"label"`
	Score float32 `json:"score"`
}

var cfg = params{TopK: 5}

func main() {}

func init() {
	edgehost.Register(edgehost.Plugin{
		Init: func(b []byte) error {
			if err := json.Unmarshal(b, &cfg); err != nil {
				return edgehost.BadParams("params: %v", err)
			}
			if cfg.TopK <= 0 {
				return edgehost.BadParams("params: top_k must be positive, got %d", cfg.TopK)
			}
			return nil
		},
		Post: post,
	})
}

var scores []float32
var order []int

func post(req *edgehost.PostRequest) error {
	if len(req.Tensors) == 0 {
		return edgehost.Unsupported("model has no outputs")
	}
	t := &req.Tensors[0]
	n := t.Len()
	scores, order = scores[:0], order[:0]
	for i := 0; i < n; i++ {
		scores = append(scores, t.Float(i))
		order = append(order, i)
	}
	if cfg.Softmax {
		softmax(scores)
	}
	sort.SliceStable(order, func(a, b int) bool { return scores[order[a]] > scores[order[b]] })
	k := min(cfg.TopK, n)
	top := make([]entry, k)
	for j := 0; j < k; j++ {
		i := order[j]
		label := ""
		if i < len(cfg.Labels) {
			label = cfg.Labels[i]
		}
		top[j] = entry{Index: i, Label: label, Score: scores[i]}
	}
	out, err := json.Marshal(struct {
		Top []entry `json:"top"`
	}{top})
	if err != nil {
		return err
	}
	req.SetResult(out)
	return nil
}

func softmax(v []float32) {
	m := float32(math.Inf(-1))
	for _, x := range v {
		m = max(m, x)
	}
	var sum float64
	for i, x := range v {
		e := math.Exp(float64(x - m))
		v[i] = float32(e)
		sum += e
	}
	for i := range v {
		v[i] = float32(float64(v[i]) / sum)
	}
}
