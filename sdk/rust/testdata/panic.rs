//! panic.rs: a post plugin that panics in every call, for the test that a Rust panic's
//! message reaches the caller's error and the host log (host/server, host/pipeline).
#[derive(Default)]
struct Panics;

impl edgehost::Plugin for Panics {
    fn post(&mut self, req: &mut edgehost::PostRequest) -> edgehost::Result<()> {
        let shares: Vec<f32> = vec![0.5; 3];
        let k = req.tensors.len() + 6; // 7 for a one-output model
        panic!("segment index {} is past the {} classes", k, shares.len());
    }
}

edgehost::plugin!(post: Panics);
