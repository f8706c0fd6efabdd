//! Compiles the Open Inference Protocol's `.proto` for the `remote`
//! feature, in Rust (`protox`), so building needs no `protoc`.

fn main() {
    #[cfg(feature = "remote")]
    remote();
}

#[cfg(feature = "remote")]
fn remote() {
    let proto = "proto/open_inference_v2.proto";
    println!("cargo:rerun-if-changed={proto}");
    let fds = protox::compile([proto], ["proto"]).unwrap_or_else(|e| panic!("{proto}: {e}"));
    tonic_prost_build::configure()
        .build_server(false)
        .build_transport(true)
        // Tensor bytes as `Bytes`: a request that fails over to another
        // endpoint is sent again without copying its tensors.
        .bytes(".inference.ModelInferRequest.raw_input_contents")
        .bytes(".inference.ModelInferResponse.raw_output_contents")
        .compile_fds(fds)
        .unwrap_or_else(|e| panic!("{proto}: generating the client: {e}"));
}
