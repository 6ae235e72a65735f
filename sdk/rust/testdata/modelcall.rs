//! modelcall.rs: a test plugin (kind both, shared instance) for the Rust SDK's model calls:
//! pre writes a pattern into the pipeline model's input; post runs the granted model itself
//! on the same pattern in its own buffers (edgehost::Model) and answers whether its output
//! equals the pipeline's. host/pipeline's TestSDKModelCalls runs it.
#[derive(Default)]
struct ModelCall {
    model: Option<edgehost::Model>,
}

fn pattern(b: &mut [u8]) {
    for (i, v) in b.iter_mut().enumerate() {
        *v = (i * 7 % 251) as u8;
    }
}

impl edgehost::Plugin for ModelCall {
    fn init(&mut self, _params: &[u8]) -> edgehost::Result<()> {
        self.model = Some(edgehost::Model::open("mobilenet")?);
        Ok(())
    }
    fn pre(&mut self, req: &mut edgehost::PreRequest) -> edgehost::Result<()> {
        pattern(req.tensor(0)?.data);
        Ok(())
    }
    fn post(&mut self, req: &mut edgehost::PostRequest) -> edgehost::Result<()> {
        let m = self.model.as_mut().ok_or_else(|| edgehost::internal("no model"))?;
        pattern(m.inputs[0].data());
        m.run()?;
        let eq = m.outputs[0].data() == &*req.tensor(0)?.data;
        req.set_result(format!("{{\"lang\":\"rust\",\"equal\":{}}}", eq).into_bytes());
        Ok(())
    }
}

edgehost::plugin!(both: ModelCall);
