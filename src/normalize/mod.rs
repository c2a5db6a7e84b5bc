//! Normalization: what a reader really sees, and everything that was hidden from them.
//!
//! Contract: [`normalize`] is pure (text in, [`Normalized`] out), never fails, and never loses
//! information silently:
//! - `sanitized` is the text with every invisible character removed and NFKC applied: what a
//!   human sees on screen, and what ragwall hands to the LLM;
//! - `text` is `sanitized` with homoglyph words folded to ASCII: what detectors read;
//! - `hidden` holds text decoded from invisible carriers (tag characters, variation selectors),
//!   which the firewall scans like visible text;
//! - `findings` say what was removed or rewritten, where (byte spans into the **original**), and
//!   how suspicious that is. Hiding text is itself evidence, independent of what it says.
//!
//! NFKC is applied per normalization segment (a starter and its combining marks), which equals
//! whole-string NFKC except for conjoining Hangul jamo written as separate starters; keeping
//! segments lets every output byte point back to the original byte it came from.

mod confusables;
pub mod invisible;
pub mod templates;

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::canonical_combining_class;

use crate::finding::{Finding, FindingKind, Severity, Span};
use invisible::Invisible;

/// Options for [`normalize`]; part of the config's `[normalize]` table.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NormalizeOptions {
    /// Fold homoglyph words (mixed-script, or non-Latin posing as Latin) to ASCII for detectors.
    pub fold_confusables: bool,
    /// Longest hidden text kept per chunk, in bytes; the rest is cut (and the cut reported).
    pub max_hidden_bytes: usize,
}

impl Default for NormalizeOptions {
    fn default() -> Self {
        NormalizeOptions {
            fold_confusables: true,
            max_hidden_bytes: 64 * 1024,
        }
    }
}

/// How a hidden text was carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HiddenKind {
    TagCharacters,
    VariationSelectors,
}

/// Text decoded from invisible characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HiddenText {
    pub kind: HiddenKind,
    pub text: String,
    /// Where the carrier characters sit in the original text.
    pub span: Span,
}

/// Output of [`normalize`]. See the module docs for what each text is for.
#[derive(Debug, Clone)]
pub struct Normalized {
    pub sanitized: String,
    pub text: String,
    /// For each byte of `text`, its origin in the original; `None` means identity.
    offsets: Option<Vec<u32>>,
    original_len: usize,
    pub hidden: Vec<HiddenText>,
    pub findings: Vec<Finding>,
}

impl Normalized {
    /// Maps a byte range of `text` back to the original text.
    pub fn original_span(&self, start: usize, end: usize) -> Span {
        match &self.offsets {
            None => Span::new(start.min(self.original_len), end.min(self.original_len)),
            Some(map) => map_span(map, start, end, self.original_len),
        }
    }

    /// Highest severity among the findings, if any.
    pub fn max_severity(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }
}

/// Normalizes one chunk's text. See the module docs.
pub fn normalize(input: &str, opts: &NormalizeOptions) -> Normalized {
    if input.is_ascii() {
        // ASCII has no invisible, compatibility or confusable characters: identity, then only
        // template tokens remain to look for.
        let mut n = Normalized {
            sanitized: input.to_owned(),
            text: input.to_owned(),
            offsets: None,
            original_len: input.len(),
            hidden: Vec::new(),
            findings: Vec::new(),
        };
        add_template_findings(&mut n);
        return n;
    }
    let mut scan = Scanner::new(input, opts);
    // Most non-ASCII text (accents, CJK, Cyrillic) is already NFKC: then segments are copied
    // as they are. "Maybe" (combining marks that could compose) takes the careful path.
    scan.nfkc_stable = unicode_normalization::is_nfkc_quick(input.chars())
        == unicode_normalization::IsNormalized::Yes;
    for (i, c) in input.char_indices() {
        scan.push(i, c);
    }
    scan.finish()
}

/// Invisible characters splitting this many words make the finding `High`.
const WORD_SPLITS_HIGH: u32 = 3;

/// Findings folded per kind so a chunk with 10 000 zero-width spaces yields one finding.
#[derive(Debug, Default)]
struct Tally {
    count: u32,
    first: Option<Span>,
    severity: Option<Severity>,
}

impl Tally {
    fn add(&mut self, span: Span, severity: Severity) {
        self.count += 1;
        self.first.get_or_insert(span);
        self.severity = self.severity.max(Some(severity));
    }
}

/// A run of consecutive invisible characters of one class.
#[derive(Debug)]
struct Run {
    class: Invisible,
    start: usize,
    end: usize,
    chars: Vec<char>,
}

struct Scanner<'a> {
    input: &'a str,
    opts: &'a NormalizeOptions,
    out: String,
    map: Vec<u32>,
    /// Current normalization segment: a starter and its combining marks.
    seg: String,
    seg_start: usize,
    run: Option<Run>,
    /// Last visible character before the current run, for context (word splits, emoji).
    prev_visible: Option<char>,
    /// The whole input passed the NFKC quick check: no segment needs rewriting.
    nfkc_stable: bool,
    hidden: Vec<HiddenText>,
    hidden_bytes: usize,
    hidden_cut: bool,
    tag_findings: Vec<Finding>,
    invisible: Tally,
    /// Runs of invisible characters inside words (`ig\u{200B}nore`).
    word_splits: u32,
    bidi: Tally,
    compat: Tally,
    compat_example: Option<(String, String)>,
}

impl<'a> Scanner<'a> {
    fn new(input: &'a str, opts: &'a NormalizeOptions) -> Self {
        Scanner {
            input,
            opts,
            out: String::with_capacity(input.len()),
            map: Vec::with_capacity(input.len()),
            seg: String::new(),
            seg_start: 0,
            run: None,
            prev_visible: None,
            nfkc_stable: false,
            hidden: Vec::new(),
            hidden_bytes: 0,
            hidden_cut: false,
            tag_findings: Vec::new(),
            invisible: Tally::default(),
            word_splits: 0,
            bidi: Tally::default(),
            compat: Tally::default(),
            compat_example: None,
        }
    }

    fn push(&mut self, i: usize, c: char) {
        match invisible::classify(c) {
            Some(class) => match &mut self.run {
                Some(run) if run.class == class => {
                    run.end = i + c.len_utf8();
                    run.chars.push(c);
                }
                _ => {
                    self.end_run(Some(c));
                    self.run = Some(Run {
                        class,
                        start: i,
                        end: i + c.len_utf8(),
                        chars: vec![c],
                    });
                }
            },
            None => {
                self.end_run(Some(c));
                if canonical_combining_class(c) == 0 {
                    self.flush_segment();
                    self.seg_start = i;
                }
                self.seg.push(c);
                self.prev_visible = Some(c);
            }
        }
    }

    /// Applies NFKC to the pending segment and appends it to the output.
    fn flush_segment(&mut self) {
        if self.seg.is_empty() {
            return;
        }
        let origin = self.seg_start as u32;
        let before = self.out.len();
        if self.seg.len() == 1 || self.nfkc_stable {
            // A single ASCII byte, or text already in NFKC: identity.
            self.out.push_str(&self.seg);
        } else {
            self.out.extend(self.seg.nfkc());
            if self.out[before..] != self.seg
                && self.out[before..] != *self.seg.nfc().collect::<String>()
            {
                let meaningful = self.seg.chars().any(char::is_alphanumeric);
                let span = Span::new(self.seg_start, self.seg_start + self.seg.len());
                let sev = if meaningful {
                    Severity::Low
                } else {
                    Severity::Info
                };
                self.compat.add(span, sev);
                if meaningful && self.compat_example.is_none() {
                    self.compat_example = Some((self.seg.clone(), self.out[before..].to_owned()));
                }
            }
        }
        self.map
            .extend(std::iter::repeat_n(origin, self.out.len() - before));
        self.seg.clear();
    }

    /// Closes the current invisible run; `next` is the visible character after it, if any.
    fn end_run(&mut self, next: Option<char>) {
        let Some(run) = self.run.take() else { return };
        let span = Span::new(run.start, run.end);
        match run.class {
            Invisible::Tag => {
                if invisible::is_emoji_flag(self.prev_visible, &run.chars) {
                    return;
                }
                let decoded = invisible::decode_tags(&run.chars);
                let sev = if decoded.trim().is_empty() {
                    Severity::Low
                } else {
                    Severity::High
                };
                let detail = format!(
                    "{} tag characters hide the text {:?}",
                    run.chars.len(),
                    preview(&decoded)
                );
                self.tag_findings.push(Finding::new(
                    FindingKind::TagCharacters,
                    sev,
                    Some(span),
                    detail,
                ));
                self.keep_hidden(HiddenKind::TagCharacters, decoded, span);
            }
            Invisible::VariationSelector => {
                // One selector after a base character is ordinary emoji/ideograph styling; a run
                // of them carries bytes.
                if run.chars.len() < 2 {
                    return;
                }
                let decoded = invisible::decode_variation_selectors(&run.chars);
                let detail = format!(
                    "{} variation selectors encode the text {:?}",
                    run.chars.len(),
                    preview(&decoded)
                );
                self.tag_findings.push(Finding::new(
                    FindingKind::VariationSelectors,
                    Severity::High,
                    Some(span),
                    detail,
                ));
                self.keep_hidden(HiddenKind::VariationSelectors, decoded, span);
            }
            Invisible::Bidi => {
                for _ in &run.chars {
                    self.bidi.add(span, Severity::Medium);
                }
            }
            Invisible::Other => {
                let sev = self.other_invisible_severity(&run, next);
                if sev == Some(Severity::Medium) {
                    self.word_splits += 1;
                }
                if let Some(sev) = sev {
                    for _ in &run.chars {
                        self.invisible.add(span, sev);
                    }
                }
            }
        }
    }

    /// How suspicious a run of zero-width/format characters is, or `None` when it is an
    /// ordinary use (byte-order mark at the start, joiners inside emoji or non-Latin scripts).
    fn other_invisible_severity(&self, run: &Run, next: Option<char>) -> Option<Severity> {
        use unicode_properties::UnicodeEmoji;
        if run.start == 0 && run.chars.iter().all(|&c| c == '\u{FEFF}') {
            return None;
        }
        let joiners_only = run
            .chars
            .iter()
            .all(|&c| matches!(c, '\u{200C}' | '\u{200D}'));
        let ctx = [self.prev_visible, next];
        if joiners_only
            && ctx.iter().flatten().any(|&c| {
                (!c.is_ascii() && c.is_alphabetic() && !is_latin_like(c))
                    || c.is_emoji_char() && !c.is_ascii()
            })
        {
            return None;
        }
        let splits_word = ctx.iter().all(|c| c.is_some_and(char::is_alphanumeric));
        let soft_hyphens = run.chars.iter().all(|&c| c == '\u{00AD}');
        Some(if splits_word && !soft_hyphens {
            Severity::Medium
        } else {
            Severity::Low
        })
    }

    fn keep_hidden(&mut self, kind: HiddenKind, mut text: String, span: Span) {
        if text.trim().is_empty() {
            return;
        }
        let room = self.opts.max_hidden_bytes.saturating_sub(self.hidden_bytes);
        if text.len() > room {
            let mut cut = room;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            self.hidden_cut = true;
        }
        if text.is_empty() {
            return;
        }
        self.hidden_bytes += text.len();
        // Adjacent runs of the same carrier (split by a visible space, say) read as one message.
        if let Some(last) = self.hidden.last_mut()
            && last.kind == kind
            && self.input[last.span.end..span.start]
                .chars()
                .all(char::is_whitespace)
        {
            last.text.push_str(&text);
            last.span.end = span.end;
            return;
        }
        self.hidden.push(HiddenText { kind, text, span });
    }

    fn finish(mut self) -> Normalized {
        self.end_run(None);
        self.flush_segment();
        let mut findings = std::mem::take(&mut self.tag_findings);
        if self.hidden_cut {
            findings.push(Finding::new(
                FindingKind::TagCharacters,
                Severity::High,
                None,
                format!(
                    "hidden text exceeds {} bytes and was cut for scanning",
                    self.opts.max_hidden_bytes
                ),
            ));
        }
        // One word split can be an editor's artefact; several are deliberate obfuscation of
        // what a tokenizer reads, which is evidence in itself.
        if self.word_splits >= WORD_SPLITS_HIGH {
            self.invisible.severity = Some(Severity::High);
        }
        let tallies = [
            (
                FindingKind::InvisibleCharacter,
                &self.invisible,
                "zero-width or invisible characters removed",
            ),
            (
                FindingKind::BidiControl,
                &self.bidi,
                "bidirectional control characters removed",
            ),
            (
                FindingKind::CompatibilityForm,
                &self.compat,
                "compatibility characters rewritten by NFKC",
            ),
        ];
        for (kind, tally, what) in tallies {
            if let (Some(sev), Some(first)) = (tally.severity, tally.first) {
                let mut detail = format!("{} {what}", tally.count);
                if matches!(kind, FindingKind::CompatibilityForm)
                    && let Some((a, b)) = &self.compat_example
                {
                    detail.push_str(&format!(" (e.g. {a:?} → {b:?})"));
                }
                let mut f = Finding::new(kind, sev, Some(first), detail);
                f.count = tally.count;
                findings.push(f);
            }
        }

        let sanitized = self.out;
        let (text, offsets) = match self
            .opts
            .fold_confusables
            .then(|| confusables::fold(&sanitized))
            .flatten()
        {
            None => (sanitized.clone(), self.map),
            Some(folded) => {
                let outer = &self.map;
                let map: Vec<u32> = folded
                    .map
                    .iter()
                    .map(|&i| {
                        outer
                            .get(i as usize)
                            .copied()
                            .unwrap_or(self.input.len() as u32)
                    })
                    .collect();
                if folded.suspicious_words > 0 {
                    let (s, e) = folded.first.unwrap_or((0, 0));
                    let span = map_span(outer, s, e, self.input.len());
                    let mut detail = format!(
                        "{} word(s) written with look-alike letters from another script",
                        folded.suspicious_words
                    );
                    if let Some((a, b)) = &folded.example {
                        detail.push_str(&format!(" (e.g. {a:?} reads as {b:?})"));
                    }
                    let mut f =
                        Finding::new(FindingKind::Homoglyph, Severity::Medium, Some(span), detail);
                    f.count = folded.suspicious_words;
                    findings.push(f);
                }
                (folded.text, map)
            }
        };
        let mut n = Normalized {
            sanitized,
            text,
            offsets: Some(offsets),
            original_len: self.input.len(),
            hidden: self.hidden,
            findings,
        };
        add_template_findings(&mut n);
        n
    }
}

/// Maps `[start, end)` of a text whose byte `i` came from original byte `map[i]` back to the
/// original: from the origin of `start` to the first origin past that of `end - 1` (the next
/// character's start), or the end of the original.
fn map_span(map: &[u32], start: usize, end: usize, original_len: usize) -> Span {
    let at = |i: usize| map.get(i).map_or(original_len, |&o| o as usize);
    let s = at(start);
    let last = if end > start { at(end - 1) } else { s };
    let e = map
        .get(end..)
        .and_then(|rest| rest.iter().map(|&o| o as usize).find(|&o| o > last))
        .unwrap_or(original_len);
    Span::new(s, e.max(s))
}

fn is_latin_like(c: char) -> bool {
    use unicode_script::{Script, UnicodeScript};
    matches!(
        c.script(),
        Script::Latin | Script::Common | Script::Inherited
    )
}

fn add_template_findings(n: &mut Normalized) {
    let tokens = templates::find(&n.text);
    let Some(first) = tokens.first() else { return };
    let severity = tokens
        .iter()
        .map(|t| t.severity)
        .max()
        .unwrap_or(first.severity);
    let span = n.original_span(first.start, first.end);
    let detail = format!(
        "{} chat-template/role token(s), first {:?}",
        tokens.len(),
        &n.text[first.start..first.end]
    );
    let mut f = Finding::new(FindingKind::TemplateToken, severity, Some(span), detail);
    f.count = tokens.len() as u32;
    n.findings.push(f);
}

/// First 80 characters, for details that humans read.
fn preview(s: &str) -> String {
    let mut p: String = s.chars().take(80).collect();
    if p.len() < s.len() {
        p.push('…');
    }
    p
}

#[cfg(test)]
mod tests;
