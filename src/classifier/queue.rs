//! The inference queue: model sessions on dedicated threads, never on an async worker.
//!
//! Callers submit a job (the windows of one or more texts) and get a oneshot receiver. The queue
//! is bounded by *windows*, not jobs: a submit that would exceed `capacity` fails at once with
//! `Overloaded`, so overload is answered immediately instead of queueing without bound. A job is
//! cut into pieces of at most one batch (`max_batch` windows, `batch_tokens` padded tokens),
//! grouped by length, so that every worker can take part of one big job (a scanner's page of
//! points) instead of one worker running it while the others idle. Each worker takes as many
//! pieces as fit one round, sorts their windows by length to minimise padding, runs them, and
//! records the scores; the last piece of a job answers its caller. Pieces whose caller has gone
//! (receiver dropped) are discarded unrun.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use tokio::sync::oneshot;

use super::model::Model;
use super::windows::Window;
use crate::detect::DetectError;

/// Counters for metrics and benches; all monotonic except `queued_windows`.
#[derive(Debug, Default)]
pub struct QueueStats {
    pub queued_windows: AtomicUsize,
    pub batches: AtomicU64,
    pub windows: AtomicU64,
    pub padded_tokens: AtomicU64,
    pub inference_nanos: AtomicU64,
    pub overloaded: AtomicU64,
    pub abandoned: AtomicU64,
    /// Histogram of batch sizes (windows per batch), buckets of [`BATCH_BUCKETS`].
    pub batch_size_buckets: [AtomicU64; BATCH_BUCKETS.len()],
}

/// Upper bounds of the batch-size histogram buckets.
pub const BATCH_BUCKETS: [usize; 8] = [1, 2, 4, 8, 16, 32, 64, usize::MAX];

type Reply = oneshot::Sender<Result<Vec<f32>, DetectError>>;

/// One submitted job: collects the scores of its pieces and answers the caller once.
struct Gather {
    scores: Mutex<Vec<f32>>,
    /// Pieces not yet recorded.
    remaining: AtomicUsize,
    /// Taken by whoever answers: the last piece, or the first failure.
    reply: Mutex<Option<Reply>>,
    abandoned: AtomicBool,
    span: tracing::Span,
}

impl Gather {
    /// True when nobody waits for this job any more (caller gone, or already answered with an
    /// error); counts an abandoned job once in `stats`.
    fn is_moot(&self, stats: &QueueStats) -> bool {
        let Ok(reply) = self.reply.lock() else {
            return true;
        };
        match reply.as_ref() {
            None => true,
            Some(tx) if tx.is_closed() => {
                if !self.abandoned.swap(true, Ordering::AcqRel) {
                    stats.abandoned.fetch_add(1, Ordering::Relaxed);
                }
                true
            }
            Some(_) => false,
        }
    }

    /// Records one piece's outcome (`positions[k]` is where score `k` belongs).
    fn record(&self, positions: &[usize], result: Result<Vec<f32>, DetectError>) {
        let answer = match result {
            Ok(piece) => {
                if let Ok(mut all) = self.scores.lock() {
                    for (&at, score) in positions.iter().zip(piece) {
                        all[at] = score;
                    }
                }
                if self.remaining.fetch_sub(1, Ordering::AcqRel) != 1 {
                    return;
                }
                match self.scores.lock() {
                    Ok(mut all) => Ok(std::mem::take(&mut *all)),
                    Err(_) => Err(DetectError::Failed("score buffer poisoned".into())),
                }
            }
            Err(e) => Err(e),
        };
        if let Some(tx) = self.reply.lock().ok().and_then(|mut r| r.take()) {
            let _ = tx.send(answer);
        }
    }
}

/// A piece of a job: at most one batch of its windows.
struct Job {
    windows: Vec<Window>,
    /// Index in the job of each window, for putting its score back in order.
    positions: Vec<usize>,
    gather: Arc<Gather>,
}

struct Shared {
    queue: Mutex<VecDeque<Job>>,
    ready: Condvar,
    shutdown: AtomicBool,
    capacity: usize,
    max_batch: usize,
    batch_tokens: usize,
    stats: Arc<QueueStats>,
}

/// Handle to the queue and its workers. Dropping it stops the workers after the current batch.
#[derive(Debug)]
pub struct Batcher {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("capacity", &self.capacity)
            .finish()
    }
}

/// Queue sizing.
#[derive(Debug, Clone, Copy)]
pub struct QueueLimits {
    pub capacity: usize,
    pub max_batch: usize,
    pub batch_tokens: usize,
}

impl Batcher {
    /// Starts one worker thread per model.
    pub fn start(models: Vec<Model>, limits: QueueLimits, stats: Arc<QueueStats>) -> Self {
        let shared = Arc::new(Shared {
            queue: Mutex::new(VecDeque::new()),
            ready: Condvar::new(),
            shutdown: AtomicBool::new(false),
            capacity: limits.capacity,
            max_batch: limits.max_batch.max(1),
            batch_tokens: limits.batch_tokens.max(1),
            stats,
        });
        let workers = models
            .into_iter()
            .enumerate()
            .map(|(i, model)| {
                let shared = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name(format!("ragwall-infer-{i}"))
                    .spawn(move || worker(shared, model))
                    .expect("spawn inference thread")
            })
            .collect();
        Batcher { shared, workers }
    }

    /// Enqueues `windows`; the receiver yields one score per window, in order.
    pub fn submit(
        &self,
        windows: Vec<Window>,
    ) -> Result<oneshot::Receiver<Result<Vec<f32>, DetectError>>, DetectError> {
        let (tx, rx) = oneshot::channel();
        if windows.is_empty() {
            let _ = tx.send(Ok(Vec::new()));
            return Ok(rx);
        }
        let n = windows.len();
        let stats = &self.shared.stats;
        // Cut outside the lock: other callers and the workers need the queue meanwhile.
        let pieces = split(windows, self.shared.max_batch, self.shared.batch_tokens);
        let many = pieces.len() > 1;
        {
            let mut q = self
                .shared
                .queue
                .lock()
                .map_err(|_| DetectError::Failed("inference queue poisoned".into()))?;
            if self.shared.shutdown.load(Ordering::Acquire) {
                return Err(DetectError::Failed("inference workers have stopped".into()));
            }
            let queued = stats.queued_windows.load(Ordering::Acquire);
            // A job larger than the whole queue is still accepted when the queue is empty, so a
            // single huge chunk is slow rather than impossible.
            if queued > 0 && queued + n > self.shared.capacity {
                stats.overloaded.fetch_add(1, Ordering::Relaxed);
                return Err(DetectError::Overloaded(format!(
                    "{queued} windows queued, capacity {}",
                    self.shared.capacity
                )));
            }
            stats.queued_windows.fetch_add(n, Ordering::AcqRel);
            let gather = Arc::new(Gather {
                scores: Mutex::new(vec![f32::NAN; n]),
                remaining: AtomicUsize::new(pieces.len()),
                reply: Mutex::new(Some(tx)),
                abandoned: AtomicBool::new(false),
                span: tracing::Span::current(),
            });
            q.extend(pieces.into_iter().map(|(positions, windows)| Job {
                windows,
                positions,
                gather: Arc::clone(&gather),
            }));
        }
        // Wake every worker only when there is work for more than one.
        if many {
            self.shared.ready.notify_all();
        } else {
            self.shared.ready.notify_one();
        }
        Ok(rx)
    }

    pub fn stats(&self) -> &Arc<QueueStats> {
        &self.shared.stats
    }
}

impl Drop for Batcher {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::Release);
        self.shared.ready.notify_all();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

fn worker(shared: Arc<Shared>, mut model: Model) {
    loop {
        let jobs = {
            let Ok(mut q) = shared.queue.lock() else {
                return;
            };
            while q.is_empty() && !shared.shutdown.load(Ordering::Acquire) {
                q = match shared.ready.wait(q) {
                    Ok(q) => q,
                    Err(_) => return,
                };
            }
            if q.is_empty() {
                return;
            }
            take_round(&mut q, &shared)
        };
        run_round(&shared, &mut model, jobs);
    }
}

/// Cuts a job into pieces of at most one batch each, windows grouped by length so that a piece
/// pads little. Returns `(positions in the job, windows)` per piece.
fn split(
    windows: Vec<Window>,
    max_batch: usize,
    batch_tokens: usize,
) -> Vec<(Vec<usize>, Vec<Window>)> {
    let mut order: Vec<(usize, Window)> = windows.into_iter().enumerate().collect();
    order.sort_by_key(|(_, w)| w.ids.len());
    let mut pieces: Vec<(Vec<usize>, Vec<Window>)> = Vec::new();
    let mut current: (Vec<usize>, Vec<Window>) = (Vec::new(), Vec::new());
    for (at, w) in order {
        // sorted ascending, so this window is the piece's longest
        let padded = (current.1.len() + 1) * w.ids.len();
        if !current.1.is_empty() && (current.1.len() >= max_batch || padded > batch_tokens) {
            pieces.push(std::mem::take(&mut current));
        }
        current.0.push(at);
        current.1.push(w);
    }
    if !current.1.is_empty() {
        pieces.push(current);
    }
    pieces
}

/// Pops pieces while they fit one round's budget (always at least one).
fn take_round(q: &mut VecDeque<Job>, shared: &Shared) -> Vec<Job> {
    let mut jobs = Vec::new();
    let (mut windows, mut tokens) = (0usize, 0usize);
    while let Some(job) = q.front() {
        let n = job.windows.len();
        let t: usize = job.windows.iter().map(|w| w.ids.len()).sum();
        if !jobs.is_empty() && (windows + n > shared.max_batch || tokens + t > shared.batch_tokens)
        {
            break;
        }
        let Some(job) = q.pop_front() else { break };
        shared.stats.queued_windows.fetch_sub(n, Ordering::AcqRel);
        if job.gather.is_moot(&shared.stats) {
            continue;
        }
        windows += n;
        tokens += t;
        jobs.push(job);
    }
    jobs
}

fn run_round(shared: &Shared, model: &mut Model, jobs: Vec<Job>) {
    if jobs.is_empty() {
        return;
    }
    // (job, window) pairs sorted by length: batches of similar length waste little padding.
    let mut order: Vec<(usize, usize)> = jobs
        .iter()
        .enumerate()
        .flat_map(|(j, job)| (0..job.windows.len()).map(move |w| (j, w)))
        .collect();
    order.sort_by_key(|&(j, w)| jobs[j].windows[w].ids.len());
    let mut scores: Vec<Vec<f32>> = jobs
        .iter()
        .map(|j| vec![f32::NAN; j.windows.len()])
        .collect();
    let mut failure: Option<String> = None;
    let mut i = 0;
    while i < order.len() {
        // Grow the batch while the padded size (count × longest) stays within budget.
        let mut end = i + 1;
        while end < order.len() && end - i < shared.max_batch {
            let (j, w) = order[end];
            let longest = jobs[j].windows[w].ids.len();
            if (end - i + 1) * longest > shared.batch_tokens {
                break;
            }
            end += 1;
        }
        let batch: Vec<&Window> = order[i..end]
            .iter()
            .map(|&(j, w)| &jobs[j].windows[w])
            .collect();
        let longest = batch.last().map_or(0, |w| w.ids.len());
        let _enter = jobs[order[i].0].gather.span.enter();
        let started = Instant::now();
        let result = model.infer(&batch);
        let stats = &shared.stats;
        stats
            .inference_nanos
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        stats.batches.fetch_add(1, Ordering::Relaxed);
        stats
            .windows
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        stats
            .padded_tokens
            .fetch_add((batch.len() * longest) as u64, Ordering::Relaxed);
        let bucket = BATCH_BUCKETS
            .iter()
            .position(|&b| batch.len() <= b)
            .unwrap_or(BATCH_BUCKETS.len() - 1);
        stats.batch_size_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        match result {
            Ok(s) if s.len() == batch.len() => {
                for (&(j, w), score) in order[i..end].iter().zip(s) {
                    scores[j][w] = score;
                }
            }
            Ok(s) => {
                failure = Some(format!(
                    "model returned {} scores for {} windows",
                    s.len(),
                    batch.len()
                ))
            }
            Err(e) => failure = Some(e),
        }
        if failure.is_some() {
            break;
        }
        i = end;
    }
    for (job, s) in jobs.into_iter().zip(scores) {
        let result = match &failure {
            Some(e) => Err(DetectError::Failed(format!("inference failed: {e}"))),
            None if s.iter().any(|x| !x.is_finite()) => Err(DetectError::Failed(
                "model produced a non-finite score".into(),
            )),
            None => Ok(s),
        };
        job.gather.record(&job.positions, result);
    }
}
