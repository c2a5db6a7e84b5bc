//! Scanning one Qdrant collection, page by page.
//!
//! Per page, in this order: scroll (with vectors only when quarantining) → classify on a
//! blocking thread → upsert the flagged points into the quarantine collection → delete them
//! from the scanned one → `set_payload` the stamps that changed → save the checkpoint. Each write
//! waits until Qdrant has applied it. If the scan stops anywhere before the checkpoint, the next
//! run scans the page again: the copy is repeated (an upsert of the same id), the delete finds
//! whatever is left, stamps already written are found unchanged. Nothing is lost and nothing is
//! counted twice.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::proxy::scan::Scanner;
use crate::scan::checkpoint::{self, Checkpoint, Identity};
use crate::scan::plan::plan;
use crate::scan::progress::Progress;
use crate::scan::qdrant::{QdrantTarget, chunk_id, id_from_json, id_to_json, to_point_struct};
use crate::scan::report::{BatchTime, Report, Source};
use crate::scan::{Mode, ScanConfig, ScanError};
use crate::stamp::PAYLOAD_KEY;

/// One collection scan.
#[derive(Debug, Clone)]
pub struct QdrantJob {
    /// gRPC URL, e.g. `http://127.0.0.1:6334`.
    pub url: String,
    pub collection: String,
    pub api_key: Option<String>,
    pub mode: Mode,
    /// Report path (JSON); the Markdown summary goes beside it with `.md`. `None`: no files.
    pub out: Option<std::path::PathBuf>,
    /// Show progress (bar or log lines).
    pub progress: bool,
}

/// Scans `job.collection`, resuming from its checkpoint if there is one. Returns the report
/// (already written to `job.out`); `report.complete` is false when `stop` was set.
#[tracing::instrument(skip_all, fields(collection = %job.collection, mode = job.mode.label()))]
pub async fn scan_collection(
    scanner: Arc<Scanner>,
    cfg: &ScanConfig,
    job: &QdrantJob,
    stop: &AtomicBool,
) -> Result<Report, ScanError> {
    cfg.validate().map_err(ScanError::Config)?;
    if job.mode.stamp && !scanner.has_key() {
        return Err(ScanError::NoStampKey);
    }
    let q = QdrantTarget::connect(&job.url, job.api_key.as_deref(), cfg.timeout())?;
    let shape = q.collection(&job.collection).await?;
    let quarantine = format!("{}{}", job.collection, cfg.quarantine_suffix);
    if job.mode.quarantine {
        q.ensure_like(&quarantine, &shape).await?;
    }

    let fw = scanner.firewall();
    let identity = Identity {
        url: job.url.clone(),
        collection: job.collection.clone(),
        mode: job.mode,
        detector: fw.detector_id().to_owned(),
        policy: fw.policy().version.clone(),
    };
    let ck_path = checkpoint::path(&cfg.checkpoint_dir, &job.url, &job.collection, job.mode);
    let mut state = match checkpoint::load(&ck_path, &identity)? {
        Some(c) => {
            tracing::info!(path = %ck_path.display(), offset = ?c.offset, "resuming from checkpoint");
            if job.progress {
                eprintln!(
                    "ragwall scan: resuming {} from {} ({} points already scanned)",
                    job.collection,
                    ck_path.display(),
                    c.tally.points + c.tally.unscanned
                );
            }
            c
        }
        None => Checkpoint::new(identity.clone()),
    };
    let mut offset = match &state.offset {
        Some(v) => Some(id_from_json(v).ok_or_else(|| ScanError::Checkpoint {
            path: ck_path.display().to_string(),
            detail: format!("bad offset {v}; delete it to start over"),
        })?),
        None => None,
    };

    let done = state.tally.points + state.tally.unscanned;
    let mut progress = if job.progress {
        let total = shape.points.map(|n| n + state.tally.moved);
        Progress::new(&job.collection, total, done)
    } else {
        Progress::hidden()
    };

    let mut complete = false;
    loop {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let started = Instant::now();
        let page = q
            .scroll(
                &job.collection,
                offset.clone(),
                cfg.batch_size,
                job.mode.quarantine,
            )
            .await?;
        let next = page.next.clone();
        let first_id = page
            .points
            .first()
            .map(|p| id_to_json(&p.id))
            .unwrap_or_default();
        let n = page.points.len();

        let (points, decisions, classify) = {
            let scanner = scanner.clone();
            let collection = job.collection.clone();
            let points = page.points;
            tokio::task::spawn_blocking(move || {
                let t = Instant::now();
                let refs: Vec<_> = points
                    .iter()
                    .map(|p| (chunk_id(&p.id), &p.payload))
                    .collect();
                let d = scanner.decide(Some(&collection), &refs, true);
                drop(refs);
                (points, d, t.elapsed())
            })
            .await
            .map_err(|e| ScanError::Worker(e.to_string()))?
        };
        let decisions = decisions?;
        let mut tally = state.tally.clone();
        let writes = plan(
            &scanner,
            &job.collection,
            job.mode,
            &points,
            &decisions,
            &mut tally,
        );

        if !writes.moves.is_empty() {
            let copies = writes
                .moves
                .iter()
                .map(|(i, payload)| to_point_struct(&points[*i], payload.clone()))
                .collect();
            q.upsert(&quarantine, copies).await?;
            let ids = writes
                .moves
                .iter()
                .map(|(i, _)| points[*i].id.clone())
                .collect();
            q.delete(&job.collection, ids).await?;
        }
        for (i, stamp) in writes.stamps {
            q.set_key(&job.collection, &points[i].id, PAYLOAD_KEY, stamp)
                .await?;
        }

        tally.batch(BatchTime {
            batch: 0,
            first_id,
            points: n,
            seconds: started.elapsed().as_secs_f64(),
            classify_seconds: classify.as_secs_f64(),
        });
        state.tally = tally;
        state.offset = next.as_ref().map(id_to_json);
        progress.advance(n as u64);
        let Some(next) = next else {
            complete = true;
            break;
        };
        checkpoint::save(&ck_path, &state)?;
        offset = Some(next);

        if cfg.max_points_per_sec > 0.0 {
            let min = Duration::from_secs_f64(n as f64 / cfg.max_points_per_sec);
            if let Some(rest) = min.checked_sub(started.elapsed()) {
                tokio::time::sleep(rest).await;
            }
        }
    }
    progress.finish(if complete { "done" } else { "interrupted" });

    let report = Report::new(
        Source::Qdrant {
            url: job.url.clone(),
            collection: job.collection.clone(),
        },
        job.mode.label(),
        complete,
        &identity.detector,
        &identity.policy,
        state.tally,
    );
    if let Some(out) = &job.out {
        write_report(out, &report)?;
    }
    if complete {
        checkpoint::remove(&ck_path)?;
    }
    Ok(report)
}

/// Writes `report` as JSON to `out` and as Markdown beside it (`.md`), each atomically.
pub fn write_report(out: &std::path::Path, report: &Report) -> Result<(), ScanError> {
    let md = out.with_extension("md");
    crate::scan::atomic::write(out, report.json().as_bytes()).map_err(|e| ScanError::io(out, e))?;
    if md != out {
        crate::scan::atomic::write(&md, report.markdown().as_bytes())
            .map_err(|e| ScanError::io(&md, e))?;
    }
    Ok(())
}
