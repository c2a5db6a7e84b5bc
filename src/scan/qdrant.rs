//! The Qdrant side of a collection scan, over gRPC with the `qdrant-client` crate: collection
//! info, scroll pages, `set_payload`, upsert into the quarantine collection, delete. Every call
//! waits for Qdrant to apply it (`wait = true`), so "done" means durable before the checkpoint
//! moves on.
//!
//! Also the pure conversions between Qdrant's gRPC types and what the scanner works with:
//! payloads as JSON objects (keys sorted, since gRPC maps have no order; the stamp's content hash
//! does not depend on it), point ids as [`ChunkId`]s and JSON (for the checkpoint), and vectors
//! as read (`VectorsOutput`) into vectors as written (`Vectors`).

use std::collections::HashMap;
use std::time::Duration;

use qdrant_client::qdrant::point_id::PointIdOptions;
use qdrant_client::qdrant::{
    self as q, CreateCollection, DeletePoints, PointId, PointStruct, ScrollPoints,
    SetPayloadPoints, SparseVectorConfig, UpsertPoints, Vectors, VectorsConfig, VectorsOutput,
};
use qdrant_client::{Qdrant, QdrantError};
use serde_json::{Map, Value};

use crate::chunk::ChunkId;
use crate::scan::ScanError;

/// A point as scrolled.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub id: PointId,
    pub payload: Map<String, Value>,
    /// Present when the page was scrolled with vectors (quarantine mode).
    pub vectors: Option<Vectors>,
}

/// One scroll page and where the next one starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub points: Vec<Point>,
    pub next: Option<PointId>,
}

/// What the scanner needs to know about a collection.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectionShape {
    pub points: Option<u64>,
    pub vectors: Option<VectorsConfig>,
    pub sparse: Option<SparseVectorConfig>,
}

/// A connection to one Qdrant server.
pub struct QdrantTarget {
    client: Qdrant,
    url: String,
}

impl std::fmt::Debug for QdrantTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The client holds the API key: never printed.
        f.debug_struct("QdrantTarget")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl QdrantTarget {
    /// Prepares the connection; nothing is sent until the first call.
    pub fn connect(url: &str, api_key: Option<&str>, timeout: Duration) -> Result<Self, ScanError> {
        let bad = |detail: String| ScanError::InvalidUrl {
            url: url.to_owned(),
            detail,
        };
        let uri: http::Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| bad(e.to_string()))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(bad("expected http:// or https:// and a host".into()));
        }
        let client = Qdrant::from_url(url)
            .api_key(api_key.map(str::to_owned))
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(10).min(timeout))
            .skip_compatibility_check()
            .build()
            .map_err(|e| bad(e.to_string()))?;
        Ok(QdrantTarget {
            client,
            url: url.to_owned(),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn err(&self, op: &'static str, collection: &str, e: QdrantError) -> ScanError {
        let status = match e {
            QdrantError::ResponseError { status } => status,
            QdrantError::ResourceExhaustedError { status, .. } => status,
            other => {
                return ScanError::Qdrant {
                    op,
                    collection: collection.to_owned(),
                    detail: other.to_string(),
                };
            }
        };
        let detail = if status.message().is_empty() {
            format!("{:?}", status.code())
        } else {
            status.message().to_owned()
        };
        // The client reports a failed connection as `Internal` ("Failed to connect to …").
        let unreachable = match status.code() {
            tonic::Code::Unavailable => true,
            tonic::Code::DeadlineExceeded => op == "collection info",
            tonic::Code::Internal => detail.starts_with("Failed to connect"),
            _ => false,
        };
        if unreachable {
            return ScanError::Unreachable {
                url: self.url.clone(),
                detail,
            };
        }
        match status.code() {
            tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => {
                ScanError::Unauthorized {
                    url: self.url.clone(),
                    detail,
                }
            }
            tonic::Code::NotFound if matches!(op, "collection info" | "scroll") => {
                ScanError::MissingCollection {
                    url: self.url.clone(),
                    collection: collection.to_owned(),
                }
            }
            code => ScanError::Qdrant {
                op,
                collection: collection.to_owned(),
                detail: format!("{code:?}: {detail}"),
            },
        }
    }

    /// Size and vector config; the first call, so an unreachable server, a wrong key or a
    /// missing collection is reported before anything is written.
    pub async fn collection(&self, name: &str) -> Result<CollectionShape, ScanError> {
        let info = self
            .client
            .collection_info(name)
            .await
            .map_err(|e| self.err("collection info", name, e))?
            .result
            .ok_or_else(|| ScanError::MissingCollection {
                url: self.url.clone(),
                collection: name.to_owned(),
            })?;
        let params = info.config.and_then(|c| c.params);
        Ok(CollectionShape {
            points: info.points_count,
            vectors: params.as_ref().and_then(|p| p.vectors_config.clone()),
            sparse: params.and_then(|p| p.sparse_vectors_config),
        })
    }

    /// Creates `name` with `shape`'s vector config unless it exists; an existing one must have
    /// the same config, or copies into it would fail halfway.
    pub async fn ensure_like(&self, name: &str, shape: &CollectionShape) -> Result<(), ScanError> {
        let exists = self
            .client
            .collection_exists(name)
            .await
            .map_err(|e| self.err("collection exists", name, e))?;
        if exists {
            let have = self.collection(name).await?;
            if have.vectors != shape.vectors || have.sparse != shape.sparse {
                return Err(ScanError::Qdrant {
                    op: "quarantine check",
                    collection: name.to_owned(),
                    detail: "it exists with a different vector config than the scanned collection"
                        .into(),
                });
            }
            return Ok(());
        }
        let req = CreateCollection {
            collection_name: name.to_owned(),
            vectors_config: shape.vectors.clone(),
            sparse_vectors_config: shape.sparse.clone(),
            ..Default::default()
        };
        self.client
            .create_collection(req)
            .await
            .map_err(|e| self.err("create collection", name, e))?;
        Ok(())
    }

    pub async fn scroll(
        &self,
        name: &str,
        offset: Option<PointId>,
        limit: u32,
        with_vectors: bool,
    ) -> Result<Page, ScanError> {
        let req = ScrollPoints {
            collection_name: name.to_owned(),
            offset,
            limit: Some(limit),
            with_payload: Some(true.into()),
            with_vectors: Some(with_vectors.into()),
            ..Default::default()
        };
        let res = self
            .client
            .scroll(req)
            .await
            .map_err(|e| self.err("scroll", name, e))?;
        let points = res
            .result
            .into_iter()
            .filter_map(|p| {
                Some(Point {
                    id: p.id?,
                    payload: payload_to_json(p.payload),
                    vectors: p.vectors.map(vectors_to_input),
                })
            })
            .collect();
        Ok(Page {
            points,
            next: res.next_page_offset,
        })
    }

    /// Sets one top-level payload key of one point (other keys untouched).
    pub async fn set_key(
        &self,
        name: &str,
        id: &PointId,
        key: &str,
        value: Value,
    ) -> Result<(), ScanError> {
        let mut payload = Map::new();
        payload.insert(key.to_owned(), value);
        let req = SetPayloadPoints {
            collection_name: name.to_owned(),
            wait: Some(true),
            payload: json_to_payload(payload),
            points_selector: Some(vec![id.clone()].into()),
            ..Default::default()
        };
        self.client
            .set_payload(req)
            .await
            .map_err(|e| self.err("set_payload", name, e))?;
        Ok(())
    }

    pub async fn upsert(&self, name: &str, points: Vec<PointStruct>) -> Result<(), ScanError> {
        let req = UpsertPoints {
            collection_name: name.to_owned(),
            wait: Some(true),
            points,
            ..Default::default()
        };
        self.client
            .upsert_points(req)
            .await
            .map_err(|e| self.err("upsert", name, e))?;
        Ok(())
    }

    pub async fn delete(&self, name: &str, ids: Vec<PointId>) -> Result<(), ScanError> {
        let req = DeletePoints {
            collection_name: name.to_owned(),
            wait: Some(true),
            points: Some(ids.into()),
            ..Default::default()
        };
        self.client
            .delete_points(req)
            .await
            .map_err(|e| self.err("delete", name, e))?;
        Ok(())
    }
}

/// Recursively sorts object keys (gRPC maps arrive in no particular order).
fn sorted(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(sorted_map(m)),
        Value::Array(a) => Value::Array(a.into_iter().map(sorted).collect()),
        v => v,
    }
}

fn sorted_map(m: Map<String, Value>) -> Map<String, Value> {
    let mut entries: Vec<(String, Value)> = m.into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries.into_iter().map(|(k, v)| (k, sorted(v))).collect()
}

/// A gRPC payload as a JSON object with sorted keys.
pub fn payload_to_json(payload: HashMap<String, q::Value>) -> Map<String, Value> {
    sorted_map(
        payload
            .into_iter()
            .map(|(k, v)| (k, Value::from(v)))
            .collect(),
    )
}

/// A JSON object as a gRPC payload.
pub fn json_to_payload(payload: Map<String, Value>) -> HashMap<String, q::Value> {
    payload
        .into_iter()
        .map(|(k, v)| (k, q::Value::from(v)))
        .collect()
}

/// A point id as the firewall's chunk id.
pub fn chunk_id(id: &PointId) -> ChunkId {
    match &id.point_id_options {
        Some(PointIdOptions::Num(n)) => ChunkId::from(*n),
        Some(PointIdOptions::Uuid(u)) => ChunkId::Str(u.clone()),
        None => ChunkId::Str(String::new()),
    }
}

/// A point id as JSON, as Qdrant's REST API writes it.
pub fn id_to_json(id: &PointId) -> Value {
    match &id.point_id_options {
        Some(PointIdOptions::Num(n)) => Value::from(*n),
        Some(PointIdOptions::Uuid(u)) => Value::from(u.clone()),
        None => Value::Null,
    }
}

/// The inverse of [`id_to_json`].
pub fn id_from_json(v: &Value) -> Option<PointId> {
    match v {
        Value::Number(n) => n.as_u64().map(PointId::from),
        Value::String(s) => Some(PointId::from(s.as_str())),
        _ => None,
    }
}

/// Vectors as read into vectors as written, named or not.
pub fn vectors_to_input(v: VectorsOutput) -> Vectors {
    use q::vectors_output::VectorsOptions as Out;
    let one = |v: q::VectorOutput| -> q::Vector {
        match v.into_vector() {
            q::vector_output::Vector::Dense(d) => d.into(),
            q::vector_output::Vector::Sparse(s) => s.into(),
            q::vector_output::Vector::MultiDense(m) => m.into(),
        }
    };
    match v.vectors_options {
        Some(Out::Vector(v)) => one(v).into(),
        Some(Out::Vectors(named)) => q::NamedVectors {
            vectors: named
                .vectors
                .into_iter()
                .map(|(k, v)| (k, one(v)))
                .collect(),
        }
        .into(),
        None => Vectors::default(),
    }
}

/// A scrolled point as it is upserted elsewhere: same id, payload and vectors.
pub fn to_point_struct(p: &Point, payload: Map<String, Value>) -> PointStruct {
    PointStruct {
        id: Some(p.id.clone()),
        payload: json_to_payload(payload),
        vectors: p.vectors.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn payloads_round_trip_with_sorted_keys() {
        let original =
            json!({"text": "t", "meta": {"z": 1, "a": [1.5, "x", null, true]}, "b": "y"});
        let Value::Object(m) = original.clone() else {
            unreachable!()
        };
        let grpc = json_to_payload(m);
        let back = payload_to_json(grpc);
        assert_eq!(Value::Object(back.clone()), original);
        let keys: Vec<&str> = back.keys().map(String::as_str).collect();
        assert_eq!(keys, ["b", "meta", "text"]);
        let inner: Vec<&str> = back["meta"]
            .as_object()
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default();
        assert_eq!(inner, ["a", "z"]);
    }

    #[test]
    fn ids_convert_both_ways() {
        let num = PointId::from(42u64);
        let uuid = PointId::from("6a1b7f5e-3c1d-4d8e-9f00-2b9e0c1d2e3f");
        assert_eq!(chunk_id(&num), ChunkId::from(42u64));
        assert_eq!(
            id_to_json(&uuid),
            json!("6a1b7f5e-3c1d-4d8e-9f00-2b9e0c1d2e3f")
        );
        for id in [num, uuid] {
            assert_eq!(id_from_json(&id_to_json(&id)), Some(id));
        }
        assert_eq!(id_from_json(&json!(-1)), None);
    }

    #[test]
    fn vectors_read_are_vectors_written() {
        use q::vectors_output::VectorsOptions as Out;
        let dense = q::VectorOutput {
            vector: Some(q::vector_output::Vector::Dense(q::DenseVector {
                data: vec![0.5, 0.25],
            })),
            ..Default::default()
        };
        let v = vectors_to_input(VectorsOutput {
            vectors_options: Some(Out::Vector(dense.clone())),
        });
        assert_eq!(v, Vectors::from(vec![0.5f32, 0.25]));
        let named = vectors_to_input(VectorsOutput {
            vectors_options: Some(Out::Vectors(q::NamedVectorsOutput {
                vectors: HashMap::from([("dense".to_owned(), dense)]),
            })),
        });
        let want: Vectors = HashMap::from([("dense".to_owned(), vec![0.5f32, 0.25])]).into();
        assert_eq!(named, want);
    }
}
