//! One ONNX session and how to feed it: input names discovered from the session, dynamic
//! padding to the longest window of a batch, logits to injection probabilities.

use std::borrow::Cow;

use ort::session::{Session, SessionInputValue};
use ort::value::Tensor;

use super::windows::Window;

/// A session plus what it needs to know about its inputs and outputs.
#[derive(Debug)]
pub struct Model {
    session: Session,
    ids_input: String,
    mask_input: String,
    /// Present only when the graph takes `token_type_ids` (BERT does, DeBERTa-v3 may not).
    types_input: Option<String>,
    injection_label: usize,
    pad_id: i64,
}

impl Model {
    /// Wraps `session`, discovering its inputs. Fails when the graph does not look like a
    /// sequence classifier.
    pub fn new(session: Session, injection_label: usize, pad_id: i64) -> Result<Self, String> {
        let names: Vec<String> = session
            .inputs()
            .iter()
            .map(|i| i.name().to_owned())
            .collect();
        let find = |want: &str| names.iter().find(|n| n.as_str() == want).cloned();
        let ids_input = find("input_ids")
            .ok_or_else(|| format!("model has no input_ids input (inputs: {names:?})"))?;
        let mask_input = find("attention_mask")
            .ok_or_else(|| format!("model has no attention_mask input (inputs: {names:?})"))?;
        let types_input = find("token_type_ids");
        if let Some(extra) = names
            .iter()
            .find(|n| ![&ids_input, &mask_input].contains(n) && Some(*n) != types_input.as_ref())
        {
            return Err(format!(
                "model needs an input ragwall cannot provide: {extra}"
            ));
        }
        if session.outputs().is_empty() {
            return Err("model has no outputs".into());
        }
        Ok(Model {
            session,
            ids_input,
            mask_input,
            types_input,
            injection_label,
            pad_id,
        })
    }

    /// Injection probability of each window, in order.
    pub fn infer(&mut self, batch: &[&Window]) -> Result<Vec<f32>, String> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let b = batch.len();
        let len = batch.iter().map(|w| w.ids.len()).max().unwrap_or(0);
        let mut ids = vec![self.pad_id; b * len];
        let mut mask = vec![0i64; b * len];
        let mut types = vec![0i64; b * len];
        for (r, w) in batch.iter().enumerate() {
            let row = r * len;
            ids[row..row + w.ids.len()].copy_from_slice(&w.ids);
            mask[row..row + w.ids.len()].fill(1);
            types[row..row + w.type_ids.len()].copy_from_slice(&w.type_ids);
        }
        let shape = [b as i64, len as i64];
        let tensor = |v: Vec<i64>| Tensor::from_array((shape, v)).map_err(|e| e.to_string());
        let mut inputs: Vec<(Cow<'_, str>, SessionInputValue<'_>)> = vec![
            (Cow::Owned(self.ids_input.clone()), tensor(ids)?.into()),
            (Cow::Owned(self.mask_input.clone()), tensor(mask)?.into()),
        ];
        if let Some(t) = &self.types_input {
            inputs.push((Cow::Owned(t.clone()), tensor(types)?.into()));
        }
        let outputs = self.session.run(inputs).map_err(|e| e.to_string())?;
        let (shape, logits) = outputs[0]
            .try_extract_tensor::<f32>()
            .map_err(|e| e.to_string())?;
        let classes = match shape.len() {
            2 if shape[0] as usize == b => shape[1] as usize,
            _ => return Err(format!("unexpected logits shape {shape:?} for batch {b}")),
        };
        Ok(logits
            .chunks_exact(classes.max(1))
            .map(|row| probability(row, self.injection_label))
            .collect())
    }
}

/// Softmax probability of class `label` (sigmoid for single-logit heads).
pub fn probability(logits: &[f32], label: usize) -> f32 {
    if logits.len() == 1 {
        return 1.0 / (1.0 + (-logits[0]).exp());
    }
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = logits.iter().map(|&l| (l - max).exp()).sum();
    logits
        .get(label)
        .map_or(f32::NAN, |&l| (l - max).exp() / sum)
}

#[cfg(test)]
mod tests {
    use super::probability;

    #[test]
    fn softmax_and_sigmoid() {
        assert!((probability(&[0.0, 0.0], 1) - 0.5).abs() < 1e-6);
        assert!(probability(&[-5.0, 5.0], 1) > 0.99);
        assert!(
            probability(&[1000.0, -1000.0], 1) < 1e-6,
            "stable for large logits"
        );
        assert!((probability(&[0.0], 0) - 0.5).abs() < 1e-6);
        assert!(
            probability(&[1.0, 2.0], 7).is_nan(),
            "bad label is a failure, not a pass"
        );
    }
}
