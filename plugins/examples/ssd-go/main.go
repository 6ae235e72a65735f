// Command ssd-go is an edgehost post plugin for SSD detection models with the TFLite
// detection post-processing op (outputs: boxes [1,N,4], classes [1,N], scores [1,N],
// count [1]). It returns the detections scoring at least the threshold as JSON:
// {"units":"pixels","image":{"width":1920,"height":1280},
// "detections":[{"label":"person","class":0,"score":0.75,"box":[ymin,xmin,ymax,xmax]}]}.
// Boxes are in the original image's pixels when the pre plugin put its size in the request
// context ({"width":W,"height":H}); otherwise "units" is "normalized" and boxes are in 0..1.
package main

import (
	"encoding/json"
	"math"

	"github.com/edgehost/edgehost/sdk/go/edgehost"
)

type params struct {
	Labels      []string `json:"labels"`
	LabelOffset int      `json:"label_offset"` // added to the class id to index labels
	Threshold   float32  `json:"threshold"`
	MaxResults  int      `json:"max_results"`
}

type detection struct {
	Label string     `json:"label"`
	Class int        `json:"class"`
	Score float32    `json:"score"`
	Box   [4]float32 `json:"box"`
}

var cfg = params{Threshold: 0.5, MaxResults: 100}

func main() {}

func init() {
	edgehost.Register(edgehost.Plugin{
		Init: func(b []byte) error {
			if err := json.Unmarshal(b, &cfg); err != nil {
				return edgehost.BadParams("params: %v", err)
			}
			if cfg.Threshold < 0 || cfg.Threshold > 1 {
				return edgehost.BadParams("params: threshold %g is outside [0, 1]", cfg.Threshold)
			}
			return nil
		},
		Post: post,
	})
}

func post(req *edgehost.PostRequest) error {
	if len(req.Tensors) != 4 {
		return edgehost.Unsupported("want the 4 outputs of TFLite_Detection_PostProcess, model has %d", len(req.Tensors))
	}
	boxes, classes, scores, count := &req.Tensors[0], &req.Tensors[1], &req.Tensors[2], &req.Tensors[3]
	n := int(count.Float(0))
	n = min(n, scores.Len(), classes.Len(), boxes.Len()/4)
	var size struct{ Width, Height float64 }
	if len(req.Context) == 0 || json.Unmarshal(req.Context, &size) != nil || size.Width < 1 || size.Height < 1 {
		size.Width, size.Height = 0, 0
	}
	scale := func(v float32, side float64) float32 {
		if side == 0 {
			return v
		}
		return float32(math.Round(float64(min(max(v, 0), 1))*side*10) / 10)
	}
	dets := []detection{}
	for i := 0; i < n && len(dets) < cfg.MaxResults; i++ {
		s := scores.Float(i)
		if s < cfg.Threshold {
			continue
		}
		c := int(classes.Float(i))
		label := ""
		if j := c + cfg.LabelOffset; j >= 0 && j < len(cfg.Labels) {
			label = cfg.Labels[j]
		}
		dets = append(dets, detection{Label: label, Class: c, Score: s,
			Box: [4]float32{scale(boxes.Float(4*i), size.Height), scale(boxes.Float(4*i+1), size.Width),
				scale(boxes.Float(4*i+2), size.Height), scale(boxes.Float(4*i+3), size.Width)}})
	}
	type dims struct {
		Width  int `json:"width"`
		Height int `json:"height"`
	}
	res := struct {
		Units      string      `json:"units"`
		Image      *dims       `json:"image,omitempty"`
		Detections []detection `json:"detections"`
	}{Units: "normalized", Detections: dets}
	if size.Width > 0 {
		res.Units, res.Image = "pixels", &dims{int(size.Width), int(size.Height)}
	}
	out, err := json.Marshal(res)
	if err != nil {
		return err
	}
	req.SetResult(out)
	return nil
}
