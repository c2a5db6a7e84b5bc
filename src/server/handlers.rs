//! Route handlers: thin adapters from the wire format to [`App::inspect`] and back.

use axum::Json;
use axum::extract::{Extension, State};
use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};
use tracing::instrument;

use super::App;
use super::api::{
    BlockedResponse, ClassifierInfo, GuardRequest, GuardResponse, Health, ModelResponse,
    PassedChunk, RemovedChunk, ScanRequest, ScanResponse, with_collection,
};
use super::errors::ApiError;
use super::extract::ApiJson;
use super::middleware::{Permit, RequestId};
use crate::http::ErrorBody;
use crate::policy::Action;
use crate::wrap::new_nonce;

/// Tag of the firewall routes in the OpenAPI document.
pub const FIREWALL: &str = "firewall";
/// Tag of the operational routes.
pub const OPERATIONS: &str = "operations";

/// The error answers of every inspecting route, documented once (OpenAPI only: the
/// answers themselves come from [`ApiError`]).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
enum InspectErrors {
    #[response(status = 400, description = "Body is not JSON")]
    NotJson(ErrorBody),
    #[response(status = 401, description = "Missing or wrong API key")]
    Unauthorized(ErrorBody),
    #[response(status = 413, description = "Body over max_body_bytes")]
    TooLarge(ErrorBody),
    #[response(status = 415, description = "Body not UTF-8, or not application/json")]
    NotUtf8Json(ErrorBody),
    #[response(status = 422, description = "JSON of the wrong shape")]
    WrongShape(ErrorBody),
    #[response(
        status = 429,
        description = "Too many requests in flight (Retry-After)"
    )]
    Busy(ErrorBody),
    #[response(status = 431, description = "More chunks than max_chunks_per_call")]
    TooManyChunks(ErrorBody),
    #[response(status = 500, description = "Detector failed; nothing scanned")]
    DetectorFailed(ErrorBody),
    #[response(
        status = 503,
        description = "Classifier overloaded or warming up (Retry-After)"
    )]
    Unavailable(ErrorBody),
    #[response(status = 504, description = "Deadline exceeded; nothing scanned")]
    Deadline(ErrorBody),
}

/// Inspect chunks and return one verdict per chunk.
///
/// Verdicts are returned whatever their action (`block` included); nothing is removed. A chunk
/// that could not be scanned (over `max_chunk_bytes`) gets `scanned: false` and the policy's
/// `on_error` action. When the detector cannot run for the whole request (overload, failure,
/// deadline) the answer is an error and no verdict is returned.
#[utoipa::path(
    post,
    path = "/v1/scan",
    tag = FIREWALL,
    request_body = ScanRequest,
    responses(
        (status = 200, description = "One verdict per chunk, in order", body = ScanResponse),
        InspectErrors,
    ),
    security(("api_key" = []))
)]
#[instrument(skip_all, fields(chunks))]
pub async fn scan(
    State(app): State<App>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    Extension(permit): Extension<Permit>,
    ApiJson(req): ApiJson<ScanRequest>,
) -> Result<Json<ScanResponse>, ApiError> {
    tracing::Span::current().record("chunks", req.chunks.len());
    let chunks = with_collection(req.chunks, req.collection.as_deref());
    let (_, verdicts) = app.inspect("/v1/scan", &request_id, chunks, permit).await?;
    Ok(Json(ScanResponse {
        request_id,
        detector: app.firewall().detector_id().to_owned(),
        policy_version: app.firewall().policy().version.clone(),
        verdicts,
    }))
}

/// Inspect chunks and return what may reach the prompt, wrapped.
///
/// Chunks whose action is `allow` or `tag` come back (sanitized) and wrapped in `context`, with
/// the `system_instruction` that explains the envelopes; quarantined and unscanned chunks are
/// listed in `quarantined` with their reasons. If any chunk's action is `block` (including a
/// chunk that could not be scanned, with the default `on_error = "block"`), the whole request is
/// refused with 403 and the blocked chunks: nothing of it may be used.
#[utoipa::path(
    post,
    path = "/v1/guard",
    tag = FIREWALL,
    request_body = GuardRequest,
    responses(
        (status = 200, description = "Passing chunks, wrapped context and instruction", body = GuardResponse),
        (status = 403, description = "A chunk was blocked; the request is refused", body = BlockedResponse),
        InspectErrors,
    ),
    security(("api_key" = []))
)]
#[instrument(skip_all, fields(chunks))]
pub async fn guard(
    State(app): State<App>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    Extension(permit): Extension<Permit>,
    ApiJson(req): ApiJson<GuardRequest>,
) -> Result<Json<GuardResponse>, ApiError> {
    tracing::Span::current().record("chunks", req.chunks.len());
    let chunks = with_collection(req.chunks, req.collection.as_deref());
    let (chunks, verdicts) = app
        .inspect("/v1/guard", &request_id, chunks, permit)
        .await?;
    let blocked: Vec<serde_json::Value> = verdicts
        .iter()
        .filter(|v| v.action == Action::Block)
        .filter_map(|v| serde_json::to_value(RemovedChunk::from(v)).ok())
        .collect();
    if !blocked.is_empty() {
        return Err(ApiError::Blocked(blocked));
    }
    let fw = app.firewall();
    let nonce = new_nonce();
    let wrapped = fw.wrap(&verdicts, req.mode, &nonce);
    let mut passed = Vec::new();
    let mut quarantined = Vec::new();
    for (chunk, v) in chunks.into_iter().zip(&verdicts) {
        // Same rule as `Firewall::wrap`: only scanned, passing chunks with sanitized text.
        match (&v.sanitized, v.scanned && v.action.passes()) {
            (Some(text), true) => passed.push(PassedChunk {
                id: chunk.id,
                text: text.clone(),
                collection: chunk.collection,
                source: chunk.source,
                metadata: chunk.metadata,
                action: v.action,
                score: v.score,
            }),
            _ => quarantined.push(RemovedChunk::from(v)),
        }
    }
    Ok(Json(GuardResponse {
        request_id,
        detector: fw.detector_id().to_owned(),
        policy_version: fw.policy().version.clone(),
        chunks: passed,
        quarantined,
        context: wrapped.context,
        system_instruction: wrapped.system_instruction,
        mode: wrapped.mode,
        nonce: wrapped.nonce,
    }))
}

/// The detector identity and the classifier's manifest.
#[utoipa::path(
    get,
    path = "/v1/model",
    tag = FIREWALL,
    responses(
        (status = 200, description = "Detector and model", body = ModelResponse),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn model(State(app): State<App>) -> Json<ModelResponse> {
    let fw = app.firewall();
    let classifier = app.classifier().map(|c| ClassifierInfo {
        manifest: serde_json::to_value(c.manifest()).unwrap_or_default(),
        model_sha256: c.manifest().model_sha256().to_owned(),
        origin: c.origin().to_owned(),
        device: c.placement().used.to_string(),
    });
    Json(ModelResponse {
        detector: fw.detector_id().to_owned(),
        policy_version: fw.policy().version.clone(),
        calibrated_threshold: fw.detector().calibrated_threshold(),
        classifier,
    })
}

/// Liveness: the process is serving HTTP.
#[utoipa::path(get, path = "/healthz", tag = OPERATIONS,
    responses((status = 200, description = "Alive", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// Readiness: the model is loaded and has answered a warm-up inference.
#[utoipa::path(get, path = "/readyz", tag = OPERATIONS,
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "Warming up", body = Health),
    ))]
pub async fn readyz(State(app): State<App>) -> Response {
    if app.is_ready() {
        Json(Health {
            status: "ready".into(),
        })
        .into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health {
                status: "warming".into(),
            }),
        )
            .into_response()
    }
}

/// Prometheus metrics (text exposition format).
#[utoipa::path(get, path = "/metrics", tag = OPERATIONS,
    responses((status = 200, description = "Metrics", content_type = "text/plain; version=0.0.4", body = String)))]
pub async fn metrics(State(app): State<App>) -> Result<Response, ApiError> {
    let text = app
        .metrics()
        .render()
        .map_err(|e| ApiError::Internal(format!("metrics: {e}")))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

/// Unknown route.
pub async fn not_found() -> ApiError {
    ApiError::NotFound
}

/// Known route, wrong method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
