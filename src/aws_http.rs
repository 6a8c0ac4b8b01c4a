//! The one HTTPS client every AWS SDK client shares, the collectors' and the
//! S3 store's alike.
//!
//! The SDK crates are built without their own HTTPS client (and so without
//! the legacy hyper 0.14 stack and the aws-lc C library they would bring):
//! this client uses rustls with ring, the same crypto as reqwest and
//! octocrab, so one provider serves the whole process and the build
//! compiles one TLS stack.

use aws_smithy_http_client::tls;
use aws_smithy_runtime_api::client::http::SharedHttpClient;

/// An HTTPS client (rustls with ring, the platform's root certificates) for
/// an SDK config loader. Each call builds a new connection pool: callers
/// keep one per SDK configuration so that service clients share it.
pub fn https_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}
