package config

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// Stream is a pipeline's optional camera stream ([pipelines.NAME.stream]): frames from URL
// run through the pipeline newest first (a frame that arrives while the previous one waits
// replaces it and is counted as dropped); results go to the stream's subscribers (SSE,
// GET /v1/streams/NAME/events) and, with MQTTBroker, to MQTTTopic. See host/stream.
type Stream struct {
	// URL is the camera: http(s)://… serving multipart MJPEG (each part is handed to the
	// pre plugin as it is, a JPEG), rtsp://…, or a video file path (relative to the config
	// file), decoded by an ffmpeg child process into raw frames (ABI 1.3, §5.7).
	URL string `toml:"url"`
	// Decoder is "mjpeg" (default for http(s)) or "ffmpeg" (default for rtsp and files; may
	// be asked for an http(s) URL too).
	Decoder string `toml:"decoder"`
	// FPS caps the frames taken from the camera per second (the others are dropped and
	// counted); 0 (the default) takes every frame. With ffmpeg it is also ffmpeg's output
	// rate.
	FPS float64 `toml:"fps"`
	// Width, Height and PixelFormat are the raw frames ffmpeg writes (scaled by ffmpeg);
	// defaults 640, 480, "rgb24". The pre plugin must list the format in its manifest.
	Width       int    `toml:"width"`
	Height      int    `toml:"height"`
	PixelFormat string `toml:"pixel_format"`
	// FFmpeg is the ffmpeg binary; default "ffmpeg" on PATH (`make deps-ffmpeg` fetches a
	// static one into .deps/ffmpeg/ffmpeg).
	FFmpeg string `toml:"ffmpeg"`
	// RTSPTransport is how ffmpeg gets RTP from an rtsp:// camera: "tcp" (default:
	// interleaved on the RTSP connection, through NAT and lossy links), "udp", or "auto"
	// (ffmpeg's choice: UDP, then TCP).
	RTSPTransport string `toml:"rtsp_transport"`
	// Realtime (files only, default true) reads a file at its own frame rate, as a camera
	// would send it; Loop plays it again at its end.
	Realtime *bool `toml:"realtime"`
	Loop     bool  `toml:"loop"`
	// ReconnectMin and ReconnectMax bound the backoff between attempts when the camera is
	// gone or ffmpeg exits; defaults 100ms and 1s (doubling from min to max): a camera that
	// comes back is read again within about a second.
	ReconnectMin Duration `toml:"reconnect_min"`
	ReconnectMax Duration `toml:"reconnect_max"`
	// ReadTimeout: no complete frame from the camera (or ffmpeg) for this long and the
	// connection is dropped and made again (a camera that stalls, or trickles bytes and never
	// finishes a frame); default 5s. It also bounds connecting and the HTTP headers.
	ReadTimeout Duration `toml:"read_timeout"`
	// MaxFrameBytes bounds one MJPEG part (and is checked against a raw frame's size); a
	// larger part drops the connection. Default 8 MiB, at most server.max_body_bytes.
	MaxFrameBytes int64 `toml:"max_frame_bytes"`
	// Inflight is how many frames of the stream run at once, at most the pipeline's workers.
	// Default: the pipeline's workers, at most the machine's cores (runtime.NumCPU), so that
	// each frame in flight has a core: a frame starts while a slow one finishes, and a camera
	// whose interval is close to the frame time keeps its frames. Results still go out in
	// frame order: a frame that finishes after a newer frame's result went out is dropped
	// (counted as dropped, reason "late"), never published out of order. 1 is the strict
	// mode: one frame at a time, every frame taken is answered, throughput one worker's.
	Inflight int `toml:"inflight"`
	// MQTTBroker and MQTTTopic, both or neither: every result (and error) is published there
	// (QoS 0: a result nobody took in time is not worth queueing), as the SSE event's JSON.
	MQTTBroker string `toml:"mqtt_broker"`
	MQTTTopic  string `toml:"mqtt_topic"`
}

// FFmpegInput says whether the stream is decoded by ffmpeg (raw frames), not by edgehost's
// MJPEG reader (JPEG parts).
func (s *Stream) FFmpegInput() bool { return s.Decoder == "ffmpeg" }

// complete checks a pipeline's [pipelines.NAME.stream] and applies its defaults. Relative
// file paths are made absolute with abs (relative to the config file).
func (s *Stream) complete(pipeline string, workers int, maxBody int64, abs func(string) string, bad func(msg string, key ...string)) {
	key := func(k string) []string { return []string{"pipelines", pipeline, "stream", k} }
	u, err := url.Parse(s.URL)
	scheme := ""
	if err == nil {
		scheme = strings.ToLower(u.Scheme)
	}
	switch {
	case s.URL == "":
		bad("is required: http(s)://host/path (MJPEG), rtsp://host/path, or a video file", key("url")...)
	case scheme == "http" || scheme == "https" || scheme == "rtsp" || scheme == "rtsps":
		if u.Host == "" {
			bad(fmt.Sprintf("url %q has no host", s.URL), key("url")...)
		}
	case scheme == "" || scheme == "file" || len(scheme) == 1: // a path (C:\ on other systems)
		if scheme == "file" {
			s.URL = u.Path
		}
		s.URL = abs(s.URL)
		if st, err := os.Stat(s.URL); err != nil {
			bad(err.Error(), key("url")...)
		} else if !st.Mode().IsRegular() {
			bad(fmt.Sprintf("%s is not a regular file", s.URL), key("url")...)
		}
		scheme = "file"
	default:
		bad(fmt.Sprintf("url scheme %q: want http(s):// (MJPEG), rtsp:// or a file path", u.Scheme), key("url")...)
	}
	switch s.Decoder {
	case "":
		s.Decoder = "ffmpeg"
		if scheme == "http" || scheme == "https" {
			s.Decoder = "mjpeg"
		}
	case "ffmpeg":
	case "mjpeg":
		if scheme != "http" && scheme != "https" {
			bad("mjpeg reads http(s):// URLs; rtsp and files need \"ffmpeg\"", key("decoder")...)
		}
	default:
		bad(fmt.Sprintf("decoder %q must be \"mjpeg\" or \"ffmpeg\"", s.Decoder), key("decoder")...)
	}
	if s.FPS < 0 || s.FPS > 1000 {
		bad(fmt.Sprintf("fps %g must be between 0 (no cap) and 1000", s.FPS), key("fps")...)
	}
	if s.Width == 0 {
		s.Width = 640
	}
	if s.Height == 0 {
		s.Height = 480
	}
	if s.Width < 1 || s.Width > 8192 || s.Height < 1 || s.Height > 8192 {
		bad(fmt.Sprintf("frame size %dx%d must be within 1..8192 on each side", s.Width, s.Height), key("width")...)
	}
	switch s.PixelFormat {
	case "":
		s.PixelFormat = "rgb24"
	case "rgb24", "gray":
	default:
		bad(fmt.Sprintf("pixel_format %q must be \"rgb24\" or \"gray\"", s.PixelFormat), key("pixel_format")...)
	}
	switch s.RTSPTransport {
	case "":
		s.RTSPTransport = "tcp"
	case "tcp", "udp", "auto":
	default:
		bad(fmt.Sprintf("rtsp_transport %q must be \"tcp\", \"udp\" or \"auto\"", s.RTSPTransport), key("rtsp_transport")...)
	}
	if s.FFmpeg == "" {
		s.FFmpeg = "ffmpeg"
	} else if strings.ContainsRune(s.FFmpeg, filepath.Separator) {
		s.FFmpeg = abs(s.FFmpeg)
	}
	if s.Realtime == nil {
		t := true
		s.Realtime = &t
	}
	if s.ReconnectMin.Duration == 0 {
		s.ReconnectMin.Duration = 100 * time.Millisecond
	}
	if s.ReconnectMax.Duration == 0 {
		s.ReconnectMax.Duration = time.Second
	}
	if s.ReconnectMax.Duration < s.ReconnectMin.Duration {
		bad(fmt.Sprintf("reconnect_max %v is below reconnect_min %v", s.ReconnectMax.Duration, s.ReconnectMin.Duration), key("reconnect_max")...)
	}
	if s.ReadTimeout.Duration == 0 {
		s.ReadTimeout.Duration = 5 * time.Second
	}
	if s.MaxFrameBytes == 0 {
		s.MaxFrameBytes = min(8<<20, maxBody)
	}
	if s.MaxFrameBytes < 1024 || s.MaxFrameBytes > maxBody {
		bad(fmt.Sprintf("max_frame_bytes %d must be between 1024 and server.max_body_bytes (%d)", s.MaxFrameBytes, maxBody), key("max_frame_bytes")...)
	}
	if s.FFmpegInput() {
		bpp := int64(3)
		if s.PixelFormat == "gray" {
			bpp = 1
		}
		if n := int64(s.Width) * int64(s.Height) * bpp; n > maxBody {
			bad(fmt.Sprintf("a %dx%d %s frame is %d bytes, over server.max_body_bytes (%d)", s.Width, s.Height, s.PixelFormat, n, maxBody), key("width")...)
		}
	}
	if s.Inflight == 0 {
		s.Inflight = max(1, min(workers, runtime.NumCPU()))
	} else if s.Inflight < 1 || s.Inflight > workers {
		bad(fmt.Sprintf("inflight %d must be between 1 and the pipeline's workers (%d)", s.Inflight, workers), key("inflight")...)
	}
	if (s.MQTTBroker == "") != (s.MQTTTopic == "") {
		bad("mqtt_broker and mqtt_topic go together", key("mqtt_topic")...)
	}
	if s.MQTTBroker != "" {
		if u, err := url.Parse(s.MQTTBroker); err != nil || !(u.Scheme == "mqtt" || u.Scheme == "tcp") || u.Host == "" {
			bad(fmt.Sprintf("broker %q must be mqtt://host:port (or tcp://)", s.MQTTBroker), key("mqtt_broker")...)
		}
		if err := CheckPublishTopic(s.MQTTTopic); err != nil {
			bad(fmt.Sprintf("cannot publish to %q: %v", s.MQTTTopic, err), key("mqtt_topic")...)
		}
	}
}
