package edgehost

import "github.com/edgehost/edgehost/abi"

// Plugin holds a plugin's handlers. Leave Pre or Post nil for a post-only or pre-only plugin
// (the manifest's kind must agree).
type Plugin struct {
	// Init receives the plugin's params from config.toml as a JSON object. Optional.
	Init func(params []byte) error
	// Pre fills req.Tensors (the model's inputs) from req.Input (the request bytes).
	Pre func(req *PreRequest) error
	// Post reads req.Tensors (the model's outputs) and sets the result with req.SetResult.
	Post func(req *PostRequest) error
}

// PreRequest is one pre-processing call.
type PreRequest struct {
	Input   []byte   // the request body, aliasing guest memory the host wrote into
	Tensors []Tensor // the model's input tensors, to be filled in place
	// Flags are the call block's flags: abi.FlagSequence, abi.FlagSeqStart, abi.FlagSeqEnd
	// for a request of a sequence (ABI 1.3, ABI.md §5.8; 0 bits from older hosts).
	Flags uint32
	// SkipModel, set by the handler, asks the host not to run the model for this request
	// (abi.FlagSkipModel: the input was taken, nothing new for the model yet). ABI 1.3.
	SkipModel bool
	// Frame is set when Input is a raw frame, not an encoded image (ABI 1.3, §5.7): Height
	// rows of Stride bytes, each Width pixels of Format. The host hands raw frames only to a
	// plugin whose manifest lists the format in "frames".
	Frame   *Frame
	context []byte
	hasCtx  bool // the host passes a request context (ABI 1.1)
}

// Frame is the geometry of a raw frame (ABI 1.3, §5.7).
type Frame struct {
	Width, Height, Stride int
	Format                abi.PixelFormat
}

// ContextSupported reports whether the host passes a request context (ABI 1.1): a plugin
// that also runs on older hosts calls SetContext only then.
func (r *PreRequest) ContextSupported() bool { return r.hasCtx }

// SetContext hands b (at most abi.MaxContext bytes: the original image size, a scale, a
// request id) to the post plugin of the same request, which reads it as
// PostRequest.Context (ABI.md §5.6). The host passes the bytes through without reading
// them. It fails when b is too long or the host is older than ABI 1.1.
func (r *PreRequest) SetContext(b []byte) error {
	if !r.hasCtx {
		return &Error{abi.StatusInternal, "SetContext: this host passes no request context (it predates ABI 1.1)"}
	}
	if len(b) > abi.MaxContext {
		return &Error{abi.StatusInternal, sprintf("SetContext: %d bytes exceed the %d-byte request context", len(b), abi.MaxContext)}
	}
	r.context = b
	return nil
}

// PostRequest is one post-processing call.
type PostRequest struct {
	Tensors []Tensor // the model's output tensors, as TFLite wrote them
	// Context is what the pre plugin of the same request set with SetContext (empty when
	// it set none). It aliases guest memory and is valid during the call.
	Context []byte
	// Flags are the call block's flags: the sequence bits, and abi.FlagSkipModel when the
	// model did not run for this request (its output tensors hold the last run's values).
	Flags  uint32
	result []byte
}

// SetResult sets the bytes the host returns to the caller. The SDK keeps b alive until the
// next call; the host reads it in place.
func (r *PostRequest) SetResult(b []byte) { r.result = b }

var plugin Plugin

// Register installs the plugin's handlers. Call it from an init function.
func Register(p Plugin) { plugin = p }

// Result returns what the post handler set with SetResult.
func (r *PostRequest) Result() []byte { return r.result }
