//! Windowing: whole chunks, not the first 512 tokens.
//!
//! A chunk is tokenized once (no special tokens), cut into overlapping windows of
//! `window - specials` tokens every `stride` tokens until its last token is covered, and each
//! window gets the model's special tokens (taken from the tokenizer's own post-processor, so
//! BERT's `[CLS] … [SEP]` and RoBERTa's `<s> … </s>` both work). An injection anywhere in the
//! chunk lands whole in at least one window as long as it is shorter than `window - stride`
//! tokens. Each window remembers the byte span of the text it covers, so a verdict can point at
//! the worst one.

use tokenizers::Tokenizer;

/// One model input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub ids: Vec<i64>,
    pub type_ids: Vec<i64>,
    /// Byte range of the text this window covers.
    pub span: (usize, usize),
}

/// How texts are cut for one model.
#[derive(Debug, Clone)]
pub struct Windowing {
    /// Content tokens per window (window length minus special tokens).
    content: usize,
    stride: usize,
    prefix: Vec<(i64, i64)>,
    suffix: Vec<(i64, i64)>,
}

impl Windowing {
    /// Derives the special-token frame from the tokenizer: the difference between encoding a
    /// one-token text with and without special tokens.
    pub fn new(tokenizer: &Tokenizer, window: usize, stride: usize) -> Result<Self, String> {
        let bare = tokenizer.encode("a", false).map_err(|e| e.to_string())?;
        let full = tokenizer.encode("a", true).map_err(|e| e.to_string())?;
        let (b, f) = (bare.get_ids(), full.get_ids());
        let at = f
            .windows(b.len().max(1))
            .position(|w| w == b)
            .ok_or("tokenizer's special tokens do not frame the text")?;
        let pair = |i: usize| (f[i] as i64, full.get_type_ids()[i] as i64);
        let prefix: Vec<(i64, i64)> = (0..at).map(pair).collect();
        let suffix: Vec<(i64, i64)> = (at + b.len()..f.len()).map(pair).collect();
        let specials = prefix.len() + suffix.len();
        if window <= specials + 1 {
            return Err(format!("window of {window} tokens leaves no room for text"));
        }
        let content = window - specials;
        let stride = stride.clamp(1, content);
        Ok(Windowing {
            content,
            stride,
            prefix,
            suffix,
        })
    }

    pub fn content_tokens(&self) -> usize {
        self.content
    }

    /// Cuts `text` into windows covering all of it (one window for empty text).
    pub fn windows(&self, tokenizer: &Tokenizer, text: &str) -> Result<Vec<Window>, String> {
        let enc = tokenizer.encode(text, false).map_err(|e| e.to_string())?;
        let ids = enc.get_ids();
        let offsets = enc.get_offsets();
        let n = ids.len();
        let mut starts = vec![0usize];
        while starts.last().is_some_and(|&s| s + self.content < n) {
            let s = starts.last().copied().unwrap_or(0) + self.stride;
            starts.push(s);
        }
        Ok(starts
            .into_iter()
            .map(|s| {
                let e = (s + self.content).min(n);
                let len = self.prefix.len() + (e - s) + self.suffix.len();
                let mut w_ids = Vec::with_capacity(len);
                let mut w_types = Vec::with_capacity(len);
                for &(id, t) in &self.prefix {
                    w_ids.push(id);
                    w_types.push(t);
                }
                w_ids.extend(ids[s..e].iter().map(|&i| i as i64));
                w_types.extend(std::iter::repeat_n(0, e - s));
                for &(id, t) in &self.suffix {
                    w_ids.push(id);
                    w_types.push(t);
                }
                let span = if e > s {
                    (offsets[s].0, offsets[e - 1].1)
                } else {
                    (0, text.len())
                };
                Window {
                    ids: w_ids,
                    type_ids: w_types,
                    span,
                }
            })
            .collect())
    }
}
