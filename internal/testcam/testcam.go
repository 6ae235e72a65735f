// Package testcam is a camera for tests and benchmarks: a real HTTP server on loopback that
// serves multipart MJPEG (multipart/x-mixed-replace, as IP cameras and ESP32-CAM boards do)
// at a fixed frame rate, a reproducible frame sequence made with image/jpeg, and that can be
// killed (listener and every connection closed) and started again on the same address.
package testcam

import (
	"bytes"
	"fmt"
	"image"
	"image/draw"
	"image/jpeg"
	_ "image/png" // peacock.png
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Frames makes n JPEG frames from the image at path: frame i is the image with a black
// 6-pixel bar at row 4i (mod height), as a camera would see something move. Same bytes on
// every run (image/jpeg is deterministic).
func Frames(path string, n int) ([][]byte, error) { return FramesSized(path, 0, n) }

// FramesSized is Frames with the image first scaled (nearest neighbour) to width pixels
// wide, keeping its aspect (0: as it is): a camera's 640-pixel stream, say.
func FramesSized(path string, width, n int) ([][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	src, _, err := image.Decode(f)
	if err != nil {
		return nil, err
	}
	if sb := src.Bounds(); width > 0 && width != sb.Dx() {
		h := sb.Dy() * width / sb.Dx()
		dst := image.NewRGBA(image.Rect(0, 0, width, h))
		for y := 0; y < h; y++ {
			for x := 0; x < width; x++ {
				dst.Set(x, y, src.At(sb.Min.X+x*sb.Dx()/width, sb.Min.Y+y*sb.Dy()/h))
			}
		}
		src = dst
	}
	b := src.Bounds()
	out := make([][]byte, n)
	for i := range out {
		img := image.NewRGBA(b)
		draw.Draw(img, b, src, b.Min, draw.Src)
		y := b.Min.Y + (4*i)%b.Dy()
		draw.Draw(img, image.Rect(b.Min.X, y, b.Max.X, min(y+6, b.Max.Y)), image.Black, image.Point{}, draw.Src)
		var buf bytes.Buffer
		if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 85}); err != nil {
			return nil, err
		}
		out[i] = buf.Bytes()
	}
	return out, nil
}

// Cam is a running (or killed) camera.
type Cam struct {
	addr   string
	fps    float64
	frames [][]byte
	Served atomic.Int64 // frames written, over every connection

	mu  sync.Mutex
	srv *http.Server
}

// Start serves frames at fps on a free loopback port.
func Start(frames [][]byte, fps float64) (*Cam, error) {
	c := &Cam{fps: fps, frames: frames}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	c.addr = l.Addr().String()
	c.serve(l)
	return c, nil
}

// URL is the camera's MJPEG URL.
func (c *Cam) URL() string { return "http://" + c.addr + "/video" }

func (c *Cam) serve(l net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(c.handle)}
	c.mu.Lock()
	c.srv = srv
	c.mu.Unlock()
	go srv.Serve(l)
}

func (c *Cam) handle(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "multipart/x-mixed-replace; boundary=edgehostframe")
	tick := time.NewTicker(time.Duration(float64(time.Second) / c.fps))
	defer tick.Stop()
	for i := 0; ; i++ {
		j := c.frames[i%len(c.frames)]
		if _, err := fmt.Fprintf(w, "--edgehostframe\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n", len(j)); err != nil {
			return
		}
		if _, err := w.Write(j); err != nil {
			return
		}
		if _, err := w.Write([]byte("\r\n")); err != nil {
			return
		}
		w.(http.Flusher).Flush()
		c.Served.Add(1)
		select {
		case <-tick.C:
		case <-r.Context().Done():
			return
		}
	}
}

// Kill closes the listener and every connection at once, as a camera losing power does.
func (c *Cam) Kill() {
	c.mu.Lock()
	srv := c.srv
	c.srv = nil
	c.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

// Restart serves again on the same address (retrying while the port is not free yet).
func (c *Cam) Restart() error {
	var err error
	for i := 0; i < 50; i++ {
		var l net.Listener
		if l, err = net.Listen("tcp", c.addr); err == nil {
			c.serve(l)
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return err
}
