//! An in-memory Qdrant gRPC server for the scanner's tests and bench: the Points and Collections
//! services from `qdrant-client`'s generated server traits, holding points in memory with
//! Qdrant's semantics for what the scanner uses — scroll (points ordered by id, integers before
//! UUIDs, `offset` inclusive, `next_page_offset` = the first id of the next page, default limit
//! 10), `set_payload` (merges top-level keys), upsert (overwrites), delete by ids, collection
//! info, exists, create (refused when it exists). Everything else answers `unimplemented`.
//!
//! Test hooks: an API key checked by an interceptor (`api-key` header, as Qdrant does), a log of
//! every call, and injected failures (`Aborted`, which the client does not retry) on the n-th
//! call of a method. Shared with `examples/bench_scan.rs` through `#[path]`.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use ::qdrant_client::qdrant::collections_server::{Collections, CollectionsServer};
use ::qdrant_client::qdrant::point_id::PointIdOptions;
use ::qdrant_client::qdrant::points_selector::PointsSelectorOneOf;
use ::qdrant_client::qdrant::with_payload_selector::SelectorOptions as PayloadSel;
use ::qdrant_client::qdrant::with_vectors_selector::SelectorOptions as VectorSel;
use ::qdrant_client::qdrant::*;
use tonic::{Request, Response, Status};

/// A point id in Qdrant's order: integers first, then UUIDs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Key {
    Num(u64),
    Uuid(String),
}

impl Key {
    pub fn of(id: &PointId) -> Result<Key, Status> {
        match &id.point_id_options {
            Some(PointIdOptions::Num(n)) => Ok(Key::Num(*n)),
            Some(PointIdOptions::Uuid(u)) => Ok(Key::Uuid(u.to_ascii_lowercase())),
            None => Err(Status::invalid_argument("empty point id")),
        }
    }

    pub fn id(&self) -> PointId {
        match self {
            Key::Num(n) => PointId::from(*n),
            Key::Uuid(u) => PointId::from(u.as_str()),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoredPoint {
    pub payload: HashMap<String, Value>,
    pub vectors: Option<Vectors>,
}

impl StoredPoint {
    /// The payload as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.payload
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::from(v.clone())))
                .collect(),
        )
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Collection {
    pub vectors: Option<VectorsConfig>,
    pub sparse: Option<SparseVectorConfig>,
    pub points: BTreeMap<Key, StoredPoint>,
}

impl Collection {
    /// A collection of `dim`-dimensional cosine vectors.
    pub fn dense(dim: u64) -> Collection {
        Collection {
            vectors: Some(VectorParamsBuilder::new(dim, Distance::Cosine).into()),
            ..Default::default()
        }
    }

    pub fn insert(&mut self, id: Key, payload: serde_json::Value, vector: Vec<f32>) {
        let payload = match payload {
            serde_json::Value::Object(m) => {
                m.into_iter().map(|(k, v)| (k, Value::from(v))).collect()
            }
            _ => HashMap::new(),
        };
        self.points.insert(
            id,
            StoredPoint {
                payload,
                vectors: Some(vector.into()),
            },
        );
    }
}

/// One call received.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub method: &'static str,
    pub collection: String,
    /// Scroll offset, ids written…
    pub detail: String,
}

#[derive(Debug, Default)]
pub struct State {
    pub collections: HashMap<String, Collection>,
    pub calls: Vec<Call>,
    /// `(method, n)`: the n-th call (from 1) of `method` fails with `Aborted`.
    pub fail: Vec<(&'static str, usize)>,
    counts: HashMap<&'static str, usize>,
}

impl State {
    /// Calls that change data.
    pub fn writes(&self) -> Vec<&Call> {
        self.calls
            .iter()
            .filter(|c| matches!(c.method, "upsert" | "delete" | "set_payload" | "create"))
            .collect()
    }

    pub fn count(&self, method: &str) -> usize {
        self.calls.iter().filter(|c| c.method == method).count()
    }
}

pub type Store = Arc<Mutex<State>>;

pub fn store() -> Store {
    Arc::new(Mutex::new(State::default()))
}

#[derive(Debug, Clone)]
struct Service {
    store: Store,
}

fn missing(name: &str) -> Status {
    Status::not_found(format!("Not found: Collection `{name}` doesn't exist!"))
}

fn done() -> PointsOperationResponse {
    PointsOperationResponse {
        result: Some(UpdateResult {
            operation_id: Some(0),
            status: UpdateStatus::Completed as i32,
        }),
        ..Default::default()
    }
}

fn ids(selector: Option<PointsSelector>) -> Result<Vec<Key>, Status> {
    match selector.and_then(|s| s.points_selector_one_of) {
        Some(PointsSelectorOneOf::Points(list)) => list.ids.iter().map(Key::of).collect(),
        Some(PointsSelectorOneOf::Filter(_)) => Err(Status::unimplemented("filter selectors")),
        None => Err(Status::invalid_argument("no points selector")),
    }
}

#[allow(deprecated)]
fn vector_out(v: &Vector) -> VectorOutput {
    let vector = match &v.vector {
        Some(vector::Vector::Dense(d)) => vector_output::Vector::Dense(d.clone()),
        Some(vector::Vector::Sparse(s)) => vector_output::Vector::Sparse(s.clone()),
        Some(vector::Vector::MultiDense(m)) => vector_output::Vector::MultiDense(m.clone()),
        _ => vector_output::Vector::Dense(DenseVector {
            data: v.data.clone(),
        }),
    };
    VectorOutput {
        vector: Some(vector),
        ..Default::default()
    }
}

fn vectors_out(v: &Vectors) -> VectorsOutput {
    let options = v.vectors_options.as_ref().map(|o| match o {
        vectors::VectorsOptions::Vector(v) => vectors_output::VectorsOptions::Vector(vector_out(v)),
        vectors::VectorsOptions::Vectors(named) => {
            vectors_output::VectorsOptions::Vectors(NamedVectorsOutput {
                vectors: named
                    .vectors
                    .iter()
                    .map(|(k, v)| (k.clone(), vector_out(v)))
                    .collect(),
            })
        }
    });
    VectorsOutput {
        vectors_options: options,
    }
}

impl Service {
    /// Logs the call, applies injected failures, and locks the state.
    fn enter(
        &self,
        method: &'static str,
        collection: &str,
        detail: String,
    ) -> Result<MutexGuard<'_, State>, Status> {
        let mut s = self.store.lock().unwrap_or_else(|e| e.into_inner());
        s.calls.push(Call {
            method,
            collection: collection.to_owned(),
            detail,
        });
        let n = {
            let c = s.counts.entry(method).or_default();
            *c += 1;
            *c
        };
        if s.fail.contains(&(method, n)) {
            return Err(Status::aborted(format!(
                "injected failure of {method} call {n}"
            )));
        }
        Ok(s)
    }
}

/// `async_trait`-shaped stubs answering `unimplemented`.
macro_rules! unimplemented_methods {
    ($($name:ident($req:ident) -> $resp:ident;)*) => {$(
        fn $name<'life0, 'async_trait>(
            &'life0 self,
            _request: Request<$req>,
        ) -> ::core::pin::Pin<Box<
            dyn ::core::future::Future<Output = Result<Response<$resp>, Status>>
                + ::core::marker::Send
                + 'async_trait,
        >>
        where
            'life0: 'async_trait,
            Self: 'async_trait,
        {
            Box::pin(async move { Err(Status::unimplemented(stringify!($name))) })
        }
    )*};
}

#[tonic::async_trait]
impl points_server::Points for Service {
    async fn upsert(
        &self,
        request: Request<UpsertPoints>,
    ) -> Result<Response<PointsOperationResponse>, Status> {
        let r = request.into_inner();
        let keys: Vec<Key> = r
            .points
            .iter()
            .map(|p| {
                p.id.as_ref()
                    .ok_or_else(|| Status::invalid_argument("no id"))
                    .and_then(Key::of)
            })
            .collect::<Result<_, _>>()?;
        let mut s = self.enter("upsert", &r.collection_name, format!("{keys:?}"))?;
        let c = s
            .collections
            .get_mut(&r.collection_name)
            .ok_or_else(|| missing(&r.collection_name))?;
        for (k, p) in keys.into_iter().zip(r.points) {
            c.points.insert(
                k,
                StoredPoint {
                    payload: p.payload,
                    vectors: p.vectors,
                },
            );
        }
        Ok(Response::new(done()))
    }

    async fn delete(
        &self,
        request: Request<DeletePoints>,
    ) -> Result<Response<PointsOperationResponse>, Status> {
        let r = request.into_inner();
        let keys = ids(r.points)?;
        let mut s = self.enter("delete", &r.collection_name, format!("{keys:?}"))?;
        let c = s
            .collections
            .get_mut(&r.collection_name)
            .ok_or_else(|| missing(&r.collection_name))?;
        for k in keys {
            c.points.remove(&k);
        }
        Ok(Response::new(done()))
    }

    async fn get(&self, request: Request<GetPoints>) -> Result<Response<GetResponse>, Status> {
        let r = request.into_inner();
        let s = self.enter("get", &r.collection_name, String::new())?;
        let c = s
            .collections
            .get(&r.collection_name)
            .ok_or_else(|| missing(&r.collection_name))?;
        let mut result = Vec::new();
        for id in &r.ids {
            if let Some(p) = c.points.get(&Key::of(id)?) {
                result.push(RetrievedPoint {
                    id: Some(id.clone()),
                    payload: p.payload.clone(),
                    ..Default::default()
                });
            }
        }
        Ok(Response::new(GetResponse {
            result,
            ..Default::default()
        }))
    }

    async fn set_payload(
        &self,
        request: Request<SetPayloadPoints>,
    ) -> Result<Response<PointsOperationResponse>, Status> {
        let r = request.into_inner();
        if r.key.is_some() {
            return Err(Status::unimplemented("set_payload with a key"));
        }
        let keys = ids(r.points_selector)?;
        let mut s = self.enter("set_payload", &r.collection_name, format!("{keys:?}"))?;
        let c = s
            .collections
            .get_mut(&r.collection_name)
            .ok_or_else(|| missing(&r.collection_name))?;
        if let Some(k) = keys.iter().find(|k| !c.points.contains_key(k)) {
            return Err(Status::not_found(format!("No point with id {k:?} found")));
        }
        for k in keys {
            if let Some(p) = c.points.get_mut(&k) {
                p.payload.extend(r.payload.clone());
            }
        }
        Ok(Response::new(done()))
    }

    async fn scroll(
        &self,
        request: Request<ScrollPoints>,
    ) -> Result<Response<ScrollResponse>, Status> {
        let r = request.into_inner();
        if r.filter.is_some() || r.order_by.is_some() {
            return Err(Status::unimplemented("scroll with a filter or order_by"));
        }
        let start = r.offset.as_ref().map(Key::of).transpose()?;
        let s = self.enter("scroll", &r.collection_name, format!("{start:?}"))?;
        let c = s
            .collections
            .get(&r.collection_name)
            .ok_or_else(|| missing(&r.collection_name))?;
        let limit = r.limit.unwrap_or(10) as usize;
        let with_payload = !matches!(
            r.with_payload.and_then(|w| w.selector_options),
            Some(PayloadSel::Enable(false))
        );
        let with_vectors = matches!(
            r.with_vectors.and_then(|w| w.selector_options),
            Some(VectorSel::Enable(true))
        );
        let mut it = c
            .points
            .iter()
            .filter(|(k, _)| start.as_ref().is_none_or(|s| *k >= s));
        let result = it
            .by_ref()
            .take(limit)
            .map(|(k, p)| RetrievedPoint {
                id: Some(k.id()),
                payload: if with_payload {
                    p.payload.clone()
                } else {
                    HashMap::new()
                },
                vectors: if with_vectors {
                    p.vectors.as_ref().map(vectors_out)
                } else {
                    None
                },
                ..Default::default()
            })
            .collect();
        let next_page_offset = it.next().map(|(k, _)| k.id());
        Ok(Response::new(ScrollResponse {
            next_page_offset,
            result,
            ..Default::default()
        }))
    }

    async fn count(
        &self,
        request: Request<CountPoints>,
    ) -> Result<Response<CountResponse>, Status> {
        let r = request.into_inner();
        let s = self.enter("count", &r.collection_name, String::new())?;
        let c = s
            .collections
            .get(&r.collection_name)
            .ok_or_else(|| missing(&r.collection_name))?;
        Ok(Response::new(CountResponse {
            result: Some(CountResult {
                count: c.points.len() as u64,
            }),
            ..Default::default()
        }))
    }

    unimplemented_methods! {
        update_vectors(UpdatePointVectors) -> PointsOperationResponse;
        delete_vectors(DeletePointVectors) -> PointsOperationResponse;
        overwrite_payload(SetPayloadPoints) -> PointsOperationResponse;
        delete_payload(DeletePayloadPoints) -> PointsOperationResponse;
        clear_payload(ClearPayloadPoints) -> PointsOperationResponse;
        create_field_index(CreateFieldIndexCollection) -> PointsOperationResponse;
        delete_field_index(DeleteFieldIndexCollection) -> PointsOperationResponse;
        create_vector_name(CreateVectorNameRequest) -> PointsOperationResponse;
        delete_vector_name(DeleteVectorNameRequest) -> PointsOperationResponse;
        search(SearchPoints) -> SearchResponse;
        search_batch(SearchBatchPoints) -> SearchBatchResponse;
        search_groups(SearchPointGroups) -> SearchGroupsResponse;
        recommend(RecommendPoints) -> RecommendResponse;
        recommend_batch(RecommendBatchPoints) -> RecommendBatchResponse;
        recommend_groups(RecommendPointGroups) -> RecommendGroupsResponse;
        discover(DiscoverPoints) -> DiscoverResponse;
        discover_batch(DiscoverBatchPoints) -> DiscoverBatchResponse;
        update_batch(UpdateBatchPoints) -> UpdateBatchResponse;
        query(QueryPoints) -> QueryResponse;
        query_batch(QueryBatchPoints) -> QueryBatchResponse;
        query_groups(QueryPointGroups) -> QueryGroupsResponse;
        facet(FacetCounts) -> FacetResponse;
        search_matrix_pairs(SearchMatrixPoints) -> SearchMatrixPairsResponse;
        search_matrix_offsets(SearchMatrixPoints) -> SearchMatrixOffsetsResponse;
    }
}

#[tonic::async_trait]
impl Collections for Service {
    async fn get(
        &self,
        request: Request<GetCollectionInfoRequest>,
    ) -> Result<Response<GetCollectionInfoResponse>, Status> {
        let r = request.into_inner();
        let s = self.enter("collection_info", &r.collection_name, String::new())?;
        let c = s
            .collections
            .get(&r.collection_name)
            .ok_or_else(|| missing(&r.collection_name))?;
        let info = CollectionInfo {
            status: CollectionStatus::Green as i32,
            points_count: Some(c.points.len() as u64),
            config: Some(CollectionConfig {
                params: Some(CollectionParams {
                    shard_number: 1,
                    vectors_config: c.vectors.clone(),
                    sparse_vectors_config: c.sparse.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        Ok(Response::new(GetCollectionInfoResponse {
            result: Some(info),
            time: 0.0,
        }))
    }

    async fn list(
        &self,
        _request: Request<ListCollectionsRequest>,
    ) -> Result<Response<ListCollectionsResponse>, Status> {
        let s = self.enter("list", "", String::new())?;
        let mut names: Vec<&String> = s.collections.keys().collect();
        names.sort();
        Ok(Response::new(ListCollectionsResponse {
            collections: names
                .into_iter()
                .map(|n| CollectionDescription { name: n.clone() })
                .collect(),
            time: 0.0,
        }))
    }

    async fn create(
        &self,
        request: Request<CreateCollection>,
    ) -> Result<Response<CollectionOperationResponse>, Status> {
        let r = request.into_inner();
        let mut s = self.enter("create", &r.collection_name, String::new())?;
        if s.collections.contains_key(&r.collection_name) {
            return Err(Status::already_exists(format!(
                "Wrong input: Collection `{}` already exists!",
                r.collection_name
            )));
        }
        s.collections.insert(
            r.collection_name,
            Collection {
                vectors: r.vectors_config,
                sparse: r.sparse_vectors_config,
                points: BTreeMap::new(),
            },
        );
        Ok(Response::new(CollectionOperationResponse {
            result: true,
            time: 0.0,
        }))
    }

    async fn delete(
        &self,
        request: Request<DeleteCollection>,
    ) -> Result<Response<CollectionOperationResponse>, Status> {
        let r = request.into_inner();
        let mut s = self.enter("delete_collection", &r.collection_name, String::new())?;
        let result = s.collections.remove(&r.collection_name).is_some();
        Ok(Response::new(CollectionOperationResponse {
            result,
            time: 0.0,
        }))
    }

    async fn collection_exists(
        &self,
        request: Request<CollectionExistsRequest>,
    ) -> Result<Response<CollectionExistsResponse>, Status> {
        let r = request.into_inner();
        let s = self.enter("collection_exists", &r.collection_name, String::new())?;
        let exists = s.collections.contains_key(&r.collection_name);
        Ok(Response::new(CollectionExistsResponse {
            result: Some(CollectionExists { exists }),
            time: 0.0,
        }))
    }

    unimplemented_methods! {
        update(UpdateCollection) -> CollectionOperationResponse;
        update_aliases(ChangeAliases) -> CollectionOperationResponse;
        list_collection_aliases(ListCollectionAliasesRequest) -> ListAliasesResponse;
        list_aliases(ListAliasesRequest) -> ListAliasesResponse;
        collection_cluster_info(CollectionClusterInfoRequest) -> CollectionClusterInfoResponse;
        update_collection_cluster_setup(UpdateCollectionClusterSetupRequest) -> UpdateCollectionClusterSetupResponse;
        create_shard_key(CreateShardKeyRequest) -> CreateShardKeyResponse;
        delete_shard_key(DeleteShardKeyRequest) -> DeleteShardKeyResponse;
        list_shard_keys(ListShardKeysRequest) -> ListShardKeysResponse;
    }
}

/// A running server on 127.0.0.1 (its own thread and runtime); stopped when dropped.
#[derive(Debug)]
pub struct TestServer {
    pub addr: SocketAddr,
    pub store: Store,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    /// Serves `store`; with `api_key`, every call must carry it in `api-key`.
    pub fn start(store: Store, api_key: Option<&str>) -> TestServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let svc = Service {
            store: store.clone(),
        };
        let key = api_key.map(str::to_owned);
        let auth = move |req: Request<()>| -> Result<Request<()>, Status> {
            match &key {
                Some(k)
                    if req.metadata().get("api-key").and_then(|v| v.to_str().ok()) != Some(k) =>
                {
                    Err(Status::unauthenticated("Invalid api-key"))
                }
                _ => Ok(req),
            }
        };
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let incoming = tonic::transport::server::TcpIncoming::from(listener);
                let res = tonic::transport::Server::builder()
                    .add_service(points_server::PointsServer::with_interceptor(
                        svc.clone(),
                        auth.clone(),
                    ))
                    .add_service(CollectionsServer::with_interceptor(svc, auth))
                    .serve_with_incoming_shutdown(incoming, async {
                        let _ = rx.await;
                    })
                    .await;
                if let Err(e) = res {
                    eprintln!("test Qdrant server failed: {e}");
                }
            });
        });
        TestServer {
            addr,
            store,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn state(&self) -> MutexGuard<'_, State> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
