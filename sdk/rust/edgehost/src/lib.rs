//! edgehost: the Rust SDK for edgehost plugins, ABI version 1 (abi/ABI.md is the spec).
//!
//! A plugin is a `cdylib` crate for `wasm32-wasi` that implements [`Plugin`] and writes one
//! [`plugin!`] line, which defines the module's exports:
//!
//! ```ignore
//! #[derive(Default)]
//! struct Argmax;
//! impl edgehost::Plugin for Argmax {
//!     fn post(&mut self, req: &mut edgehost::PostRequest) -> edgehost::Result<()> {
//!         let t = req.tensor(0)?;
//!         let best = (0..t.len()).max_by(|&a, &b| t.float(a).total_cmp(&t.float(b))).unwrap_or(0);
//!         req.set_result(format!("{{\"index\":{}}}", best).into_bytes());
//!         Ok(())
//!     }
//! }
//! edgehost::plugin!(post: Argmax);
//! ```
//!
//! The tensor API is the Go and C SDKs': descriptors with name, dtype, shape, scale and zero
//! point; `len`, `float(i)` / `set_float(i, v)` (dequantised / quantised per dtype), typed
//! views. Memory: `edgehost_alloc` keeps each block's layout in an 8-byte header before it,
//! so `edgehost_free(ptr)` (which has no size, ABI.md §3) can hand Rust's allocator the
//! layout it needs. A panic sets the call's error message (`set_error`) and logs it before
//! the module traps, so the caller sees the panic message, not just `unreachable`.
//! No crates.io dependencies; builds with Debian 12's rustc 1.63.

use std::alloc::{alloc, dealloc, Layout};
use std::cell::UnsafeCell;

pub mod json;

/// The ABI version this SDK implements.
pub const ABI_VERSION: i32 = 1;
/// Call block flag: the request-context fields exist (ABI 1.1).
pub const FLAG_CONTEXT: u32 = 1;
/// Call block flags of a request in a sequence (ABI 1.3, ABI.md §5.8): it belongs to one,
/// it is the first, it is the last.
pub const FLAG_SEQUENCE: u32 = 1 << 2;
pub const FLAG_SEQ_START: u32 = 1 << 3;
pub const FLAG_SEQ_END: u32 = 1 << 4;
/// Written by a pre plugin: no model run for this request (ABI 1.3).
pub const FLAG_SKIP_MODEL: u32 = 1 << 5;
/// The size of the request-context buffer.
pub const MAX_CONTEXT: usize = 4096;

/// A status a plugin call returns (ABI.md §7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum Status {
    Ok = 0,
    BadInput = 1,
    Internal = 2,
    Unsupported = 3,
    BadParams = 4,
    TooLarge = 5,
}

/// An error with the status the call returns and the message the caller sees.
#[derive(Debug, Clone)]
pub struct Error {
    pub status: Status,
    pub msg: String,
}

/// The result type of every handler.
pub type Result<T> = std::result::Result<T, Error>;

/// Malformed request data (HTTP 400).
pub fn bad_input(msg: impl Into<String>) -> Error { Error { status: Status::BadInput, msg: msg.into() } }
/// The plugin failed (HTTP 500).
pub fn internal(msg: impl Into<String>) -> Error { Error { status: Status::Internal, msg: msg.into() } }
/// Well-formed input the plugin does not handle (HTTP 415).
pub fn unsupported(msg: impl Into<String>) -> Error { Error { status: Status::Unsupported, msg: msg.into() } }
/// Well-formed input that needs more memory than the plugin's budget (HTTP 413).
pub fn too_large(msg: impl Into<String>) -> Error { Error { status: Status::TooLarge, msg: msg.into() } }
/// Invalid params in init: the plugin does not load.
pub fn bad_params(msg: impl Into<String>) -> Error { Error { status: Status::BadParams, msg: msg.into() } }

/// Tensor element types: TFLite's TfLiteType values (ABI.md §5.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    Float32,
    Int32,
    UInt8,
    Int64,
    Int16,
    Int8,
    Float16,
    Unknown(u32),
}

impl DType {
    fn from_u32(v: u32) -> DType {
        match v {
            1 => DType::Float32,
            2 => DType::Int32,
            3 => DType::UInt8,
            4 => DType::Int64,
            7 => DType::Int16,
            9 => DType::Int8,
            10 => DType::Float16,
            o => DType::Unknown(o),
        }
    }
    /// Size of one element in bytes, 0 for an unknown type.
    pub fn size(self) -> usize {
        match self {
            DType::UInt8 | DType::Int8 => 1,
            DType::Int16 | DType::Float16 => 2,
            DType::Float32 | DType::Int32 => 4,
            DType::Int64 => 8,
            DType::Unknown(_) => 0,
        }
    }
}

mod host {
    #[link(wasm_import_module = "edgehost")]
    extern "C" {
        pub fn log(level: i32, ptr: *const u8, len: u32);
        pub fn set_error(ptr: *const u8, len: u32);
        // ABI 1.3 (§5.9): model calls.
        pub fn model_tensors(name: *const u8, name_len: u32, descs: *mut u32, cap: u32) -> i32;
        pub fn run_model(name: *const u8, name_len: u32, bufs: *const u32, n: u32) -> i32;
    }
}

/// One tensor of a [`Model`]: its description and its buffer in the plugin's memory.
pub struct ModelTensor {
    pub dtype: DType,
    pub shape: Vec<i32>,
    pub scale: f32,
    pub zero_point: i32,
    buf: Vec<u8>, // bytes + 64, so that a 64-byte-aligned window fits
    off: usize,
    len: usize,
}

impl ModelTensor {
    /// The tensor's bytes (64-byte aligned), to fill before [`Model::run`] (inputs) or to
    /// read after it (outputs).
    pub fn data(&mut self) -> &mut [u8] { &mut self.buf[self.off..self.off + self.len] }
    fn addr(&self) -> u32 { self.buf[self.off..].as_ptr() as usize as u32 }
}

/// A model the plugin's config grants it (grants.models; ABI §5.9), with a buffer per
/// tensor in the plugin's own memory that the host binds the model's tensors to for each
/// run (zero copy).
pub struct Model {
    pub name: String,
    pub inputs: Vec<ModelTensor>,
    pub outputs: Vec<ModelTensor>,
    table: Vec<u32>,
}

const MAX_MODEL_TENSORS: usize = 16;

impl Model {
    /// Describes model `name` (from the host's metadata) and allocates its buffers; works in
    /// init as well as in a request.
    pub fn open(name: &str) -> Result<Model> {
        let mut descs = vec![0u32; MAX_MODEL_TENSORS * 16];
        let r = unsafe { host::model_tensors(name.as_ptr(), name.len() as u32, descs.as_mut_ptr(), MAX_MODEL_TENSORS as u32) };
        if r < 0 {
            return Err(internal(format!("model {}: model_tensors returned {}", name, r)));
        }
        let (nin, nout) = ((r >> 16) as usize, (r & 0xffff) as usize);
        if nin + nout > MAX_MODEL_TENSORS {
            return Err(internal(format!("model {} has {} tensors, more than {}", name, nin + nout, MAX_MODEL_TENSORS)));
        }
        let mut all = Vec::new();
        for i in 0..nin + nout {
            let d = &descs[i * 16..i * 16 + 16];
            let len = d[13] as usize;
            let buf = vec![0u8; len + 64];
            let off = (64 - (buf.as_ptr() as usize % 64)) % 64;
            let nd = (d[1] as usize).min(8);
            all.push(ModelTensor {
                dtype: DType::from_u32(d[0]),
                shape: d[2..2 + nd].iter().map(|&v| v as i32).collect(),
                scale: f32::from_bits(d[10]),
                zero_point: d[11] as i32,
                buf,
                off,
                len,
            });
        }
        let table = all.iter().flat_map(|t| [t.addr(), t.len as u32]).collect();
        let outputs = all.split_off(nin);
        Ok(Model { name: name.to_string(), inputs: all, outputs, table })
    }

    /// Runs the model once on its input buffers; the outputs are then in its output
    /// buffers. On a failure the host fails the request with its own message in any case.
    pub fn run(&mut self) -> Result<()> {
        let r = unsafe { host::run_model(self.name.as_ptr(), self.name.len() as u32, self.table.as_ptr(), (self.table.len() / 2) as u32) };
        if r != 0 {
            return Err(internal(format!("model {}: run_model returned {}", self.name, r)));
        }
        Ok(())
    }
}

/// Log levels of [`log`].
pub const LOG_DEBUG: i32 = 0;
pub const LOG_INFO: i32 = 1;
pub const LOG_WARN: i32 = 2;
pub const LOG_ERROR: i32 = 3;

/// Writes a line to the host's log (cut at 4 KiB by the host).
pub fn log(level: i32, msg: &str) {
    unsafe { host::log(level, msg.as_ptr(), msg.len() as u32) }
}

/// Sets the error message of the status the current call is about to return.
pub fn set_error(msg: &str) {
    unsafe { host::set_error(msg.as_ptr(), msg.len() as u32) }
}

/// One tensor of the call: the model's inputs in pre, its outputs in post. `data` aliases the
/// host-bound buffer (64-byte aligned) and is valid during the call.
pub struct Tensor<'a> {
    pub name: &'a str,
    pub dtype: DType,
    pub shape: Vec<i32>,
    /// Quantisation: real = scale × (q − zero_point); scale 0 when not quantised.
    pub scale: f32,
    pub zero_point: i32,
    pub data: &'a mut [u8],
}

impl<'a> Tensor<'a> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self.dtype.size() {
            0 => 0,
            s => self.data.len() / s,
        }
    }
    /// True when the tensor has no elements.
    pub fn is_empty(&self) -> bool { self.len() == 0 }
    /// True when the tensor carries quantisation parameters.
    pub fn quantized(&self) -> bool { self.scale != 0.0 }
    /// The stored value of a real number, rounded, not clamped.
    pub fn quantize(&self, v: f32) -> i32 {
        if self.scale == 0.0 { v.round() as i32 } else { (v / self.scale).round() as i32 + self.zero_point }
    }
    /// The real value of a stored one.
    pub fn dequantize(&self, q: i32) -> f32 {
        if self.scale == 0.0 { q as f32 } else { self.scale * (q - self.zero_point) as f32 }
    }
    fn elem<const N: usize>(&self, i: usize) -> [u8; N] {
        let mut b = [0u8; N];
        b.copy_from_slice(&self.data[i * N..i * N + N]);
        b
    }
    /// Element i as a real number (dequantised for integer types; float16 reads as 0).
    /// Panics when i is out of range.
    pub fn float(&self, i: usize) -> f32 {
        match self.dtype {
            DType::Float32 => f32::from_le_bytes(self.elem::<4>(i)),
            DType::UInt8 => self.dequantize(self.data[i] as i32),
            DType::Int8 => self.dequantize(self.data[i] as i8 as i32),
            DType::Int16 => self.dequantize(i16::from_le_bytes(self.elem::<2>(i)) as i32),
            DType::Int32 => self.dequantize(i32::from_le_bytes(self.elem::<4>(i))),
            DType::Int64 => self.dequantize(i64::from_le_bytes(self.elem::<8>(i)) as i32),
            _ => 0.0,
        }
    }
    /// Stores a real number into element i, quantised and clamped per dtype.
    pub fn set_float(&mut self, i: usize, v: f32) {
        match self.dtype {
            DType::Float32 => self.data[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes()),
            DType::UInt8 => self.data[i] = self.quantize(v).clamp(0, 255) as u8,
            DType::Int8 => self.data[i] = self.quantize(v).clamp(-128, 127) as i8 as u8,
            DType::Int16 => {
                let q = self.quantize(v).clamp(i16::MIN as i32, i16::MAX as i32) as i16;
                self.data[i * 2..i * 2 + 2].copy_from_slice(&q.to_le_bytes())
            }
            DType::Int32 => {
                let q = self.quantize(v);
                self.data[i * 4..i * 4 + 4].copy_from_slice(&q.to_le_bytes())
            }
            _ => {}
        }
    }
    /// The data as f32 (None unless the dtype is float32).
    pub fn as_f32(&self) -> Option<&[f32]> {
        if self.dtype != DType::Float32 {
            return None;
        }
        // The host aligns every tensor buffer to 64 bytes (ABI.md §5.4).
        Some(unsafe { std::slice::from_raw_parts(self.data.as_ptr() as *const f32, self.data.len() / 4) })
    }
    /// The data as mutable f32 (None unless the dtype is float32).
    pub fn as_f32_mut(&mut self) -> Option<&mut [f32]> {
        if self.dtype != DType::Float32 {
            return None;
        }
        Some(unsafe { std::slice::from_raw_parts_mut(self.data.as_mut_ptr() as *mut f32, self.data.len() / 4) })
    }
}

/// One pre-processing call.
pub struct PreRequest<'a> {
    /// The request body, as received.
    pub input: &'a [u8],
    /// The model's input tensors, to be filled in place.
    pub tensors: Vec<Tensor<'a>>,
    call: *mut u32,
}

impl<'a> PreRequest<'a> {
    /// Input tensor i, or an internal error naming the count.
    pub fn tensor(&mut self, i: usize) -> Result<&mut Tensor<'a>> {
        let n = self.tensors.len();
        self.tensors.get_mut(i).ok_or_else(|| internal(format!("the model has {} input tensors, want index {}", n, i)))
    }
    /// Hands b (≤ 4 KiB) to the post plugin of the same request (ABI.md §5.6).
    pub fn set_context(&mut self, b: &[u8]) -> Result<()> {
        unsafe {
            if *self.call.add(7) & FLAG_CONTEXT == 0 {
                return Err(internal("set_context: this host passes no request context (it predates ABI 1.1)"));
            }
            let cap = *self.call.add(9) as usize;
            if b.len() > cap {
                return Err(internal(format!("set_context: {} bytes exceed the {}-byte request context", b.len(), cap)));
            }
            std::ptr::copy_nonoverlapping(b.as_ptr(), *self.call.add(8) as usize as *mut u8, b.len());
            *self.call.add(10) = b.len() as u32;
        }
        Ok(())
    }
}

/// One post-processing call.
pub struct PostRequest<'a> {
    /// The model's output tensors, as TFLite wrote them.
    pub tensors: Vec<Tensor<'a>>,
    /// What the pre plugin of the same request set with set_context (empty when none).
    pub context: &'a [u8],
    result: Option<Vec<u8>>,
}

impl<'a> PostRequest<'a> {
    /// Output tensor i, or an internal error naming the count.
    pub fn tensor(&self, i: usize) -> Result<&Tensor<'a>> {
        self.tensors.get(i).ok_or_else(|| internal(format!("the model has {} output tensors, want index {}", self.tensors.len(), i)))
    }
    /// Sets the result the host sends to the caller; the SDK keeps it alive until the next call.
    pub fn set_result(&mut self, b: Vec<u8>) { self.result = Some(b) }
}

/// A plugin's handlers. Implement init and pre and/or post; [`plugin!`] exports the ones its
/// kind names.
pub trait Plugin: Default {
    /// Receives the params from config.toml as a JSON object ([`json::parse`] reads it).
    fn init(&mut self, _params: &[u8]) -> Result<()> { Ok(()) }
    /// Fills the input tensors from the request bytes.
    fn pre(&mut self, _req: &mut PreRequest) -> Result<()> { Err(internal("this plugin has no pre handler")) }
    /// Reads the output tensors and sets the result.
    fn post(&mut self, _req: &mut PostRequest) -> Result<()> { Err(internal("this plugin has no post handler")) }
}

// ---- Runtime behind the exports (used by plugin!; not part of the API) ------------------

/// The plugin instance and the last result; a wasm32 instance is single-threaded.
#[doc(hidden)]
pub struct State<T> {
    cell: UnsafeCell<Option<(T, Vec<u8>)>>,
}
unsafe impl<T> Sync for State<T> {}

impl<T: Plugin> State<T> {
    #[doc(hidden)]
    pub const fn new() -> Self { State { cell: UnsafeCell::new(None) } }
    fn get(&self) -> &mut (T, Vec<u8>) {
        // Safety: instances are never called concurrently (ABI.md §5) and no handler re-enters.
        unsafe { (*self.cell.get()).get_or_insert_with(|| (T::default(), Vec::new())) }
    }
}

fn status(r: Result<()>) -> i32 {
    match r {
        Ok(()) => 0,
        Err(e) => {
            set_error(&e.msg);
            e.status as i32
        }
    }
}

static HOOK: std::sync::Once = std::sync::Once::new();

/// Installs the panic hook once: the panic message (with its source location) becomes the
/// call's error message and a log line at error level, then the module traps.
#[doc(hidden)]
pub fn install_panic_hook() {
    HOOK.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let msg = format!("{}", info);
            set_error(&msg);
            log(LOG_ERROR, &msg);
        }))
    });
}

const HEADER: usize = 8;

/// edgehost_alloc: a block of size bytes aligned to align, with its layout stored in the 8
/// bytes before it (for edgehost_free). 0 on failure.
#[doc(hidden)]
pub fn alloc_block(size: u32, align: u32) -> u32 {
    if align == 0 || !align.is_power_of_two() || align > 4096 {
        return 0;
    }
    let align = (align as usize).max(HEADER);
    let total = match (size as usize).checked_add(align) {
        Some(t) => t,
        None => return 0,
    };
    let layout = match Layout::from_size_align(total, align) {
        Ok(l) => l,
        Err(_) => return 0,
    };
    unsafe {
        let base = alloc(layout);
        if base.is_null() {
            return 0;
        }
        let p = base.add(align);
        (p.sub(8) as *mut u32).write(total as u32);
        (p.sub(4) as *mut u32).write(align as u32);
        p as usize as u32
    }
}

/// edgehost_free: releases a block from alloc_block; 0 is a no-op.
#[doc(hidden)]
pub fn free_block(ptr: u32) {
    if ptr == 0 {
        return;
    }
    unsafe {
        let p = ptr as usize as *mut u8;
        let total = (p.sub(8) as *const u32).read() as usize;
        let align = (p.sub(4) as *const u32).read() as usize;
        dealloc(p.sub(align), Layout::from_size_align_unchecked(total, align));
    }
}

unsafe fn slice<'a>(p: u32, n: u32) -> &'a mut [u8] {
    if n == 0 {
        return &mut [];
    }
    std::slice::from_raw_parts_mut(p as usize as *mut u8, n as usize)
}

unsafe fn tensors<'a>(call: *mut u32) -> Vec<Tensor<'a>> {
    let n = *call.add(3) as usize;
    let table = *call.add(4) as usize as *const u32;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let d = table.add(i * 16);
        let nd = (*d.add(1)).min(8) as usize;
        out.push(Tensor {
            dtype: DType::from_u32(*d),
            shape: (0..nd).map(|k| *d.add(2 + k) as i32).collect(),
            scale: f32::from_bits(*d.add(10)),
            zero_point: *d.add(11) as i32,
            data: slice(*d.add(12), *d.add(13)),
            name: std::str::from_utf8(slice(*d.add(14), *d.add(15))).unwrap_or(""),
        });
    }
    out
}

#[doc(hidden)]
pub fn run_init<T: Plugin>(s: &State<T>, p: u32, n: u32) -> i32 {
    install_panic_hook();
    let params = unsafe { slice(p, n) };
    status(s.get().0.init(if params.is_empty() { b"{}" } else { params }))
}

#[doc(hidden)]
pub fn run_pre<T: Plugin>(s: &State<T>, call: u32) -> i32 {
    install_panic_hook();
    let c = call as usize as *mut u32;
    let mut req = unsafe { PreRequest { input: slice(*c.add(1), *c.add(2)), tensors: tensors(c), call: c } };
    status(s.get().0.pre(&mut req))
}

#[doc(hidden)]
pub fn run_post<T: Plugin>(s: &State<T>, call: u32) -> i32 {
    install_panic_hook();
    let c = call as usize as *mut u32;
    let context: &[u8] = unsafe {
        if *c.add(7) & FLAG_CONTEXT != 0 && *c.add(10) <= *c.add(9) { slice(*c.add(8), *c.add(10)) } else { &[] }
    };
    let mut req = PostRequest { tensors: unsafe { tensors(c) }, context, result: None };
    let st = s.get();
    let r = st.0.post(&mut req);
    if r.is_ok() {
        match req.result.take() {
            Some(b) => st.1 = b,
            None => return status(Err(internal("post handler returned Ok without set_result"))),
        }
        unsafe {
            *c.add(5) = st.1.as_ptr() as usize as u32;
            *c.add(6) = st.1.len() as u32;
        }
    }
    status(r)
}

/// Defines the module's exports for a [`Plugin`] type (which must implement Default):
/// `plugin!(pre: T)`, `plugin!(post: T)` or `plugin!(both: T)`, matching the manifest's kind.
#[macro_export]
macro_rules! plugin {
    (pre: $t:ty) => { $crate::plugin!(@common $t); $crate::plugin!(@pre $t); };
    (post: $t:ty) => { $crate::plugin!(@common $t); $crate::plugin!(@post $t); };
    (both: $t:ty) => { $crate::plugin!(@common $t); $crate::plugin!(@pre $t); $crate::plugin!(@post $t); };
    (@common $t:ty) => {
        static EDGEHOST_STATE: $crate::State<$t> = $crate::State::new();
        #[no_mangle]
        pub extern "C" fn edgehost_abi_version() -> i32 { $crate::ABI_VERSION }
        #[no_mangle]
        pub extern "C" fn edgehost_alloc(size: u32, align: u32) -> u32 { $crate::alloc_block(size, align) }
        #[no_mangle]
        pub extern "C" fn edgehost_free(ptr: u32) { $crate::free_block(ptr) }
        #[no_mangle]
        pub extern "C" fn edgehost_init(p: u32, n: u32) -> i32 { $crate::run_init(&EDGEHOST_STATE, p, n) }
    };
    (@pre $t:ty) => {
        #[no_mangle]
        pub extern "C" fn edgehost_pre(call: u32) -> i32 { $crate::run_pre(&EDGEHOST_STATE, call) }
    };
    (@post $t:ty) => {
        #[no_mangle]
        pub extern "C" fn edgehost_post(call: u32) -> i32 { $crate::run_post(&EDGEHOST_STATE, call) }
    };
}
