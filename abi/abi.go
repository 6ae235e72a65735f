// Package abi holds the constants of the edgehost plugin ABI, version 1, as specified in
// ABI.md. The host and the Go SDK both import it; the C SDK's header is written from the
// same spec. It imports nothing and must never import host or sdk packages.
package abi

// Version is the ABI version this package describes. A module whose
// edgehost_abi_version export returns another value is rejected at load.
const Version = 1

// Names of the module exports (see ABI.md, "Module exports").
const (
	ExportABIVersion = "edgehost_abi_version" // () -> i32
	ExportAlloc      = "edgehost_alloc"       // (size, align i32) -> i32 pointer, 0 on failure
	ExportFree       = "edgehost_free"        // (ptr i32)
	ExportInit       = "edgehost_init"        // (params_ptr, params_len i32) -> i32 status
	ExportPre        = "edgehost_pre"         // (call_ptr i32) -> i32 status
	ExportPost       = "edgehost_post"        // (call_ptr i32) -> i32 status
	ExportInitialize = "_initialize"          // reactor start (WASI), run once if present
)

// HostModule is the import module name of the host functions.
const HostModule = "edgehost"

// Names of the host imports in module HostModule (see ABI.md, "Host imports").
const (
	ImportLog      = "log"       // (level, ptr, len i32)
	ImportSetError = "set_error" // (ptr, len i32)
)

// ManifestSection is the name of the custom section that carries the plugin manifest (JSON).
const ManifestSection = "edgehost.manifest"

// SignatureSection is the name of the custom section that carries a plugin signature.
const SignatureSection = "edgehost.signature"

// Kind says which calls a plugin implements.
type Kind string

// Plugin kinds.
const (
	KindPre  Kind = "pre"
	KindPost Kind = "post"
	KindBoth Kind = "both"
)

// Status is the i32 a plugin call returns.
type Status int32

// Statuses (see ABI.md, "Errors").
const (
	StatusOK          Status = 0 // success
	StatusBadInput    Status = 1 // the request's data is malformed: the caller's fault (HTTP 400)
	StatusInternal    Status = 2 // the plugin failed: its own fault (HTTP 500)
	StatusUnsupported Status = 3 // the input is well formed but not handled, e.g. an image format (HTTP 415)
	StatusBadParams   Status = 4 // init: the parameters from config are invalid
	// StatusTooLarge: the input is well formed but needs more memory than the plugin's budget
	// (HTTP 413); the host adds the budget to the message. ABI 1.2: a 1.0/1.1 host answers 500.
	StatusTooLarge Status = 5
)

// Log levels for the log import.
const (
	LogDebug = 0
	LogInfo  = 1
	LogWarn  = 2
	LogError = 3
)

// DType is a tensor element type code. The values equal TFLite's TfLiteType.
type DType uint32

// Tensor element types.
const (
	Float32 DType = 1
	Int32   DType = 2
	UInt8   DType = 3
	Int64   DType = 4
	Int16   DType = 7
	Int8    DType = 9
	Float16 DType = 10
)

// Size returns the size in bytes of one element, or 0 for an unknown type.
func (d DType) Size() int {
	switch d {
	case UInt8, Int8:
		return 1
	case Int16, Float16:
		return 2
	case Float32, Int32:
		return 4
	case Int64:
		return 8
	}
	return 0
}

// String returns the KServe v2 name of the type (FP32, UINT8, ...).
func (d DType) String() string {
	switch d {
	case Float32:
		return "FP32"
	case Int32:
		return "INT32"
	case UInt8:
		return "UINT8"
	case Int64:
		return "INT64"
	case Int16:
		return "INT16"
	case Int8:
		return "INT8"
	case Float16:
		return "FP16"
	}
	return "UNKNOWN"
}

// MaxDims is the largest tensor rank a descriptor holds.
const MaxDims = 8

// TensorAlign is the alignment, in bytes, of every tensor buffer in guest memory.
const TensorAlign = 64

// Tensor descriptor layout: TensorDescSize bytes, little-endian, written by the host.
const (
	TensorDescSize     = 64
	TensorOffDType     = 0  // u32
	TensorOffNDims     = 4  // u32
	TensorOffDims      = 8  // i32[MaxDims]
	TensorOffScale     = 40 // f32 quantisation scale (0 when not quantised)
	TensorOffZeroPoint = 44 // i32 quantisation zero point
	TensorOffData      = 48 // u32 pointer to the data (TensorAlign-aligned)
	TensorOffBytes     = 52 // u32 data length in bytes
	TensorOffName      = 56 // u32 pointer to the tensor name (UTF-8, not NUL-terminated)
	TensorOffNameLen   = 60 // u32 name length
)

// Call block layout: CallSize bytes, little-endian, allocated by the host with
// edgehost_alloc once per instance and passed to edgehost_pre / edgehost_post. The first
// 32 bytes are ABI 1.0; the request-context fields (CallOffContext…) were added in 1.1 and
// are present when flags has FlagContext (a plugin built for 1.0 never reads them).
const (
	CallSize          = 64 // 48 before ABI 1.3 (see the frame block below)
	CallOffABI        = 0  // u32 ABI version (host writes)
	CallOffInput      = 4  // u32 pointer to the request bytes (host writes; pre only)
	CallOffInputLen   = 8  // u32 request length
	CallOffNTensors   = 12 // u32 number of tensor descriptors
	CallOffTensors    = 16 // u32 pointer to the first descriptor
	CallOffOutput     = 20 // u32 pointer to the result bytes (plugin writes; post)
	CallOffOutLen     = 24 // u32 result length (plugin writes)
	CallOffFlags      = 28 // u32 flags (host writes): FlagContext, FlagSequence…; a pre plugin may add FlagSkipModel
	CallOffContext    = 32 // u32 pointer to the instance's request-context buffer (host writes)
	CallOffContextCap = 36 // u32 its capacity, MaxContext (host writes)
	CallOffContextLen = 40 // u32 pre: context length the plugin wrote (plugin writes, host zeroes it first); post: length the host copied in
	CallOffReserved   = 44 // u32 reserved, 0
)

// FlagContext is set in the call block's flags when the request-context fields exist.
const FlagContext = 1

// Sequences (ABI 1.3, issue 26; ABI.md §5.8): flags bits the host sets on the pre and the
// post call of a request that belongs to a sequence (a stateful stream such as 10 ms audio
// chunks). Every request of a sequence is served by the same pre and post instances, in
// order; FlagSeqStart marks its first request (the instances are fresh), FlagSeqEnd its
// last (the instances are closed after it). A plugin built before 1.3 never reads them.
const (
	FlagSequence = 1 << 2 // the request belongs to a sequence
	FlagSeqStart = 1 << 3 // the first request of the sequence: reset any per-stream state
	FlagSeqEnd   = 1 << 4 // the last request of the sequence: flush what the stream still holds
	// FlagSkipModel is the one flags bit a plugin writes: a pre plugin sets it before
	// returning 0 when this request gives the model no new input (a streaming front end
	// that needs three 10 ms feature frames per inference); the host then does not run the
	// model and sets the bit on the post call, whose output tensors hold the last run's
	// values. A host before 1.3 ignores it (a plugin that needs it checks FlagSequence).
	FlagSkipModel = 1 << 5
)

// MaxContext is the size of the request-context buffer: the bytes a pre plugin may hand to
// the post plugin of the same request.
const MaxContext = 4096

// ABI 1.3, camera frames (issue 27; ABI.md §5.7 "Raw frames"). The call block grew from 48 to
// 64 bytes; bytes 48..63 describe a raw frame and are valid only when flags has FlagFrame.
// A pre plugin that takes raw frames declares it in its manifest ("frames": ["rgb24"]); the
// host never hands a raw frame to one that does not.
const (
	FlagFrame = 1 << 1 // the input is a raw frame (pre only): width, height, format, stride below

	CallOffFrameWidth  = 48 // u32 frame width in pixels
	CallOffFrameHeight = 52 // u32 frame height in pixels
	CallOffFrameFormat = 56 // u32 pixel format (PixelRGB24, …)
	CallOffFrameStride = 60 // u32 bytes from one row to the next (≥ width × bytes per pixel)
)

// PixelFormat is the pixel format code of a raw frame (call block offset 56).
type PixelFormat uint32

// Pixel formats of raw frames. Values are the ABI's own, not ffmpeg's.
const (
	PixelRGB24 PixelFormat = 1 // 3 bytes per pixel: R, G, B
	PixelGray8 PixelFormat = 2 // 1 byte per pixel
)

// PixelFormats maps the names used in manifests and config.toml (ffmpeg's pix_fmt names)
// to their codes.
var PixelFormats = map[string]PixelFormat{"rgb24": PixelRGB24, "gray": PixelGray8}

// BytesPerPixel returns the size of one pixel, or 0 for an unknown format.
func (f PixelFormat) BytesPerPixel() int {
	switch f {
	case PixelRGB24:
		return 3
	case PixelGray8:
		return 1
	}
	return 0
}

// String returns the format's name (ffmpeg's pix_fmt), or "unknown".
func (f PixelFormat) String() string {
	for n, c := range PixelFormats {
		if c == f {
			return n
		}
	}
	return "unknown"
}

// ABI 1.3, cascades (issue 25; ABI.md §4 and §5.9 "Model calls"): two host imports in module
// HostModule let a plugin run a model the config grants it (grants.models), on tensors in
// its own memory. Neither changes the call block.
const (
	// ImportModelTensors (name_ptr, name_len, descs_ptr, cap i32) -> i32 writes the model's
	// input then output tensor descriptors (TensorDescSize bytes each, data and name 0) at
	// descs_ptr, at most cap of them, and returns n_inputs<<16 | n_outputs, or a negative
	// ModelCall* status.
	ImportModelTensors = "model_tensors"
	// ImportRunModel (name_ptr, name_len, bufs_ptr, n i32) -> i32 runs the model once: bufs
	// is n ModelBufSize-byte entries {data u32, bytes u32}, the inputs then the outputs in
	// the model's order, each TensorAlign-aligned with exactly the tensor's byte size. It
	// returns ModelCallOK or a negative ModelCall* status; on any error the request fails
	// with the host's message, whatever status the plugin then returns.
	ImportRunModel = "run_model"
	// ModelBufSize is the size of one run_model buffer entry.
	ModelBufSize = 8
)

// Statuses of the model-call imports (negative, so model_tensors' counts stay positive).
const (
	ModelCallOK         = 0
	ModelCallNotGranted = -1 // the model is not in the plugin's grants.models (or not loaded)
	ModelCallBadBuffers = -2 // wrong count, size, alignment, or a buffer outside memory
	ModelCallLimit      = -3 // the request's max_model_calls is spent
	ModelCallDeadline   = -4 // the request's deadline or the call's time budget is spent
	ModelCallFailed     = -5 // no interpreter free in time, or inference failed
)
