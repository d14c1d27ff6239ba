//! HTTP transport for every Azure client: rustls, no automatic decompression
//! (storage wants raw bytes), no redirects, bounded timeouts, and optionally an
//! extra trusted CA (config `auth.ca_file`; the test CA in the harness).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use azure_core::http::Transport;

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot read CA file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("CA file {path} holds no PEM certificate: {source}")]
    Parse {
        path: String,
        source: reqwest::Error,
    },
    #[error("cannot build the HTTP client: {0}")]
    Build(reqwest::Error),
}

/// Builds a transport that trusts the system roots plus, when given, the
/// certificates in `extra_ca_pem`.
pub fn transport(extra_ca_pem: Option<&Path>) -> Result<Transport, TransportError> {
    let mut builder = reqwest::Client::builder()
        .gzip(false)
        .deflate(false)
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(120))
        .redirect(reqwest::redirect::Policy::none());
    if let Some(path) = extra_ca_pem {
        let shown = path.display().to_string();
        let pem = std::fs::read(path).map_err(|source| TransportError::Read {
            path: shown.clone(),
            source,
        })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|source| {
            TransportError::Parse {
                path: shown,
                source,
            }
        })?;
        builder = builder.tls_certs_merge(certs);
    }
    let client = builder.build().map_err(TransportError::Build)?;
    Ok(Transport::new(Arc::new(client)))
}
