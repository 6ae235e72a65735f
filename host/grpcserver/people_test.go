package grpcserver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgehost/edgehost/host/config"
	"github.com/edgehost/edgehost/host/engine"
	"github.com/edgehost/edgehost/host/grpcserver"
	pb "github.com/edgehost/edgehost/host/grpcserver/inference"
	"github.com/edgehost/edgehost/host/internal/testplugins"
	"github.com/edgehost/edgehost/host/server"
	"github.com/hashicorp/go-hclog"
)

// TestPeopleOverGRPC: the shipped `people` cascade (ssd, then pose per person and mobilenet
// per other object, decided by the sandboxed plugin) answered over gRPC ModelInfer gives the
// same bytes as over HTTP for the same photo, and the answer holds each person's 33
// keypoints inside the image and the laptop's mobilenet label. The cascade's model calls
// are the same whatever front end the request came through.
func TestPeopleOverGRPC(t *testing.T) {
	if testing.Short() {
		t.Skip("starts ssd, pose and mobilenet")
	}
	src, err := os.ReadFile(filepath.Join(testplugins.Root, "config.toml"))
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(src), `cache_dir = ".cache/wazero"`, `cache_dir = ""`)
	cfg, err := config.Parse(filepath.Join(testplugins.Root, "config.toml"), []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	for name := range cfg.Pipelines {
		if name != "people" {
			delete(cfg.Pipelines, name)
		}
	}
	for name := range cfg.Models {
		if name != "ssd" && name != "pose" && name != "mobilenet" {
			delete(cfg.Models, name)
		}
	}
	p := cfg.Pipelines["people"]
	p.Pre.TimeoutMS = 60000 // answers, not budgets, are checked here
	cfg.Pipelines["people"] = p
	log := hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: io.Discard})
	c, cancel := context.WithCancel(context.Background())
	defer cancel()
	e, err := engine.New(c, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(context.Background())
	srv := server.New(e, cfg.Server, log)
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(c, hl)
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go grpcserver.New(srv, cfg.Server, log).Serve(c, gl)
	client := dial(t, gl.Addr().String())

	img, err := os.ReadFile(testplugins.Model("ssd_example.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := client.ModelInfer(ctx(t), &pb.ModelInferRequest{ModelName: "people",
		Inputs:           []*pb.ModelInferRequest_InferInputTensor{{Name: "input", Datatype: "BYTES", Shape: []int64{1}}},
		RawInputContents: [][]byte{bytesElem(img)}})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.RawOutputContents) != 1 || len(r.RawOutputContents[0]) < 4 {
		t.Fatalf("response %v", r)
	}
	viaGRPC := r.RawOutputContents[0][4:]

	resp, err := http.Post("http://"+hl.Addr().String()+"/v1/pipelines/people", "image/jpeg", bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	viaHTTP, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("HTTP: %d %v %s", resp.StatusCode, err, viaHTTP)
	}
	if !bytes.Equal(bytes.TrimSpace(viaGRPC), bytes.TrimSpace(viaHTTP)) {
		t.Fatalf("the same photo, two answers:\ngRPC %s\nHTTP %s", viaGRPC, viaHTTP)
	}

	var a struct {
		Image   struct{ Width, Height float64 }
		Objects []struct {
			Label     string
			Keypoints [][2]float64
			Class     string
		}
	}
	if err := json.Unmarshal(viaGRPC, &a); err != nil {
		t.Fatalf("%v: %s", err, viaGRPC)
	}
	persons, laptop := 0, ""
	for _, o := range a.Objects {
		switch o.Label {
		case "person":
			if len(o.Keypoints) != 33 {
				t.Fatalf("a person with %d keypoints, want 33: %s", len(o.Keypoints), viaGRPC)
			}
			for _, k := range o.Keypoints {
				if k[0] < -0.25*a.Image.Width || k[0] > 1.25*a.Image.Width || k[1] < -0.25*a.Image.Height || k[1] > 1.25*a.Image.Height {
					t.Fatalf("keypoint %v far outside the %vx%v image", k, a.Image.Width, a.Image.Height)
				}
			}
			persons++
		case "laptop":
			laptop = o.Class
		}
	}
	if persons == 0 || laptop == "" {
		t.Fatalf("%d persons, laptop label %q: %s", persons, laptop, viaGRPC)
	}
	t.Logf("over gRPC and HTTP: %d persons with 33 keypoints each, the laptop is %q (%d bytes, equal)", persons, laptop, len(viaGRPC))
}
