//! The Open Inference Protocol's messages and gRPC client, generated at
//! build time from `proto/open_inference_v2.proto`.

#![allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]

tonic::include_proto!("inference");
