# ragwall: the binary, ONNX Runtime's shared library from the PyPI wheel, and nothing else.
# The model is not baked in: mount it (see docker-compose.yml) and point
# RAGWALL_CFG__CLASSIFIER__MODEL_DIR at it.
#
#   docker build -t ragwall .
#   docker run --rm -v "$PWD/models:/models:ro" -p 6335:6335 ragwall \
#     proxy --upstream http://qdrant:6333 --listen 0.0.0.0:6335

# ---- build ---------------------------------------------------------------------------------
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY plugins plugins
COPY benches benches
COPY tests tests
COPY ragwall.example.toml ./
RUN cargo build --release --locked --bin ragwall

# ---- ONNX Runtime from PyPI (the same pinned version as requirements.txt) -------------------
FROM python:3.11-slim-bookworm AS ort
ARG ONNXRUNTIME_VERSION=1.32.0
RUN pip install --no-cache-dir --no-deps --target /ort "onnxruntime==${ONNXRUNTIME_VERSION}" \
 && mkdir -p /out \
 && cp /ort/onnxruntime/capi/libonnxruntime.so.* /out/ \
 && ln -s "$(basename /out/libonnxruntime.so.*)" /out/libonnxruntime.so

# ---- runtime -------------------------------------------------------------------------------
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home ragwall
COPY --from=ort /out/ /opt/onnxruntime/lib/
COPY --from=build /src/target/release/ragwall /usr/local/bin/ragwall
COPY ragwall.example.toml /etc/ragwall/ragwall.example.toml
ENV ORT_DYLIB_PATH=/opt/onnxruntime/lib/libonnxruntime.so \
    RAGWALL_CFG__CLASSIFIER__MODEL_DIR=/models/ragwall-minilm-injection \
    RAGWALL_LOG=info
USER ragwall
EXPOSE 6335
ENTRYPOINT ["ragwall"]
CMD ["proxy", "--listen", "0.0.0.0:6335"]
