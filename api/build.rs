//! Compiles the v2 gRPC protocol with a pure-Rust protobuf compiler (no `protoc` needed).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/grpc_predict_v2.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::compile([proto], ["proto"])?;
    tonic_prost_build::configure()
        // Decode failures are the sender's fault (INVALID_ARGUMENT), not INTERNAL.
        .codec_path("crate::protocol::grpc_wire::ProtobufCodec")
        .bytes(".inference.ModelInferRequest.raw_input_contents")
        .bytes(".inference.ModelInferResponse.raw_output_contents")
        .compile_fds(descriptors)?;
    Ok(())
}
