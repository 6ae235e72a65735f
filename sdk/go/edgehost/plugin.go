package edgehost

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
}

// PostRequest is one post-processing call.
type PostRequest struct {
	Tensors []Tensor // the model's output tensors, as TFLite wrote them
	result  []byte
}

// SetResult sets the bytes the host returns to the caller. The SDK keeps b alive until the
// next call; the host reads it in place.
func (r *PostRequest) SetResult(b []byte) { r.result = b }

var plugin Plugin

// Register installs the plugin's handlers. Call it from an init function.
func Register(p Plugin) { plugin = p }

// Result returns what the post handler set with SetResult.
func (r *PostRequest) Result() []byte { return r.result }
