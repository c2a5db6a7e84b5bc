//! Integration tests: one binary, one module per adapter or subsystem. They use the real default
//! model (models/ragwall-minilm-injection), the real ONNX Runtime library from the project's
//! .venv (scripts/setup.sh installs it) and real HTTP on 127.0.0.1.

mod common;

mod classifier;
mod cli;
mod proxy;
mod scan;
mod server;
