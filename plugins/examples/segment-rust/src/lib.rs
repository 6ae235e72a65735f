//! segment-rust: an edgehost post plugin in Rust for semantic segmentation models whose output
//! is per-pixel class scores, [1, H, W, C] (DeepLab v3: 257×257×21, the PASCAL VOC classes).
//! It takes the best class of every pixel and reports each class's share of the pixels:
//!
//!   {"pixels":66049,"classes":[{"index":15,"label":"person","share":0.4211},…]}
//!
//! best share first, classes under `min_share` left out.
//!
//! Params (JSON object, all optional):
//!   "labels":    array of strings, one per class      default: the 21 PASCAL VOC labels
//!   "min_share": smallest share reported, 0..1        default 0.001
use edgehost::json::{self, Value};
use edgehost::{bad_params, unsupported, Plugin, PostRequest, Result};

const VOC: [&str; 21] = [
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tv",
];

struct Segment {
    labels: Vec<String>,
    min_share: f64,
    counts: Vec<u32>,
}

impl Default for Segment {
    fn default() -> Self {
        Segment { labels: VOC.iter().map(|s| s.to_string()).collect(), min_share: 0.001, counts: Vec::new() }
    }
}

impl Plugin for Segment {
    fn init(&mut self, params: &[u8]) -> Result<()> {
        let p = json::parse(params).map_err(|e| bad_params(format!("params: {}", e)))?;
        if let Some(v) = p.get("labels") {
            let arr = v.as_array().ok_or_else(|| bad_params("params: \"labels\" must be an array of strings"))?;
            self.labels = arr
                .iter()
                .map(|l| l.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| bad_params("params: \"labels\" must be an array of strings"))?;
        }
        if let Some(v) = p.get("min_share") {
            match v {
                Value::Number(n) if (0.0..=1.0).contains(n) => self.min_share = *n,
                _ => return Err(bad_params("params: \"min_share\" must be a number in [0, 1]")),
            }
        }
        edgehost::log(edgehost::LOG_INFO, &format!("segment-rust: {} labels, min_share {}", self.labels.len(), self.min_share));
        Ok(())
    }

    fn post(&mut self, req: &mut PostRequest) -> Result<()> {
        let t = req.tensor(0)?;
        if t.shape.len() != 4 || t.shape[0] != 1 {
            return Err(unsupported(format!("output {} has shape {:?}, want [1, H, W, classes]", t.name, t.shape)));
        }
        let (h, w, c) = (t.shape[1] as usize, t.shape[2] as usize, t.shape[3] as usize);
        if c == 0 || t.len() != h * w * c {
            return Err(unsupported(format!("output {} has {} elements for shape {:?}", t.name, t.len(), t.shape)));
        }
        self.counts.clear();
        self.counts.resize(c, 0);
        match t.as_f32() {
            Some(scores) => {
                for px in scores.chunks_exact(c) {
                    let mut best = 0;
                    for k in 1..c {
                        if px[k] > px[best] {
                            best = k;
                        }
                    }
                    self.counts[best] += 1;
                }
            }
            None => {
                for p in 0..h * w {
                    let mut best = 0;
                    for k in 1..c {
                        if t.float(p * c + k) > t.float(p * c + best) {
                            best = k;
                        }
                    }
                    self.counts[best] += 1;
                }
            }
        }
        let total = (h * w) as f64;
        let mut order: Vec<usize> = (0..c).filter(|&k| self.counts[k] as f64 / total >= self.min_share && self.counts[k] > 0).collect();
        order.sort_by(|&a, &b| self.counts[b].cmp(&self.counts[a]).then(a.cmp(&b)));
        let mut out = format!("{{\"pixels\":{},\"classes\":[", h * w);
        for (n, &k) in order.iter().enumerate() {
            if n > 0 {
                out.push(',');
            }
            out.push_str(&format!("{{\"index\":{},\"label\":", k));
            json::write_string(&mut out, self.labels.get(k).map(String::as_str).unwrap_or(""));
            out.push_str(&format!(",\"share\":{:.4}}}", self.counts[k] as f64 / total));
        }
        out.push_str("]}");
        req.set_result(out.into_bytes());
        Ok(())
    }
}

edgehost::plugin!(post: Segment);
