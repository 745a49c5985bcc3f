//! Generates the Echo service's client and server from Rust-defined messages
//! (tonic-build's manual builder: no .proto file, no protoc).

fn main() {
    use tonic_build::manual::{Builder, Method, Service};
    let method = |name: &str, route: &str, input: &str, client_streaming, server_streaming| {
        let m = Method::builder()
            .name(name)
            .route_name(route)
            .input_type(input)
            .output_type("crate::Msg")
            .codec_path("tonic::codec::ProstCodec");
        let m = if client_streaming {
            m.client_streaming()
        } else {
            m
        };
        let m = if server_streaming {
            m.server_streaming()
        } else {
            m
        };
        m.build()
    };
    let service = Service::builder()
        .name("Echo")
        .package("wharf.echo")
        .method(method("unary", "Unary", "crate::Msg", false, false))
        .method(method(
            "server_stream",
            "ServerStream",
            "crate::StreamRequest",
            false,
            true,
        ))
        .method(method("bidi", "Bidi", "crate::Msg", true, true))
        .method(method("slow", "Slow", "crate::SlowRequest", false, false))
        .build();
    Builder::new().compile(&[service]);
}
