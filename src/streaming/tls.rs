//! HTTPS for the streaming server: the configured PEM certificate chain and key, rustls with
//! the ring provider, HTTP/1.1 only (the upgrades need it).

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use super::StreamingError;
use crate::config::StreamingTls;

/// The acceptor for `tls`'s certificate and key.
pub fn acceptor(tls: &StreamingTls) -> Result<TlsAcceptor, StreamingError> {
    let err = |what: &str, path: &std::path::Path, e: &dyn std::fmt::Display| {
        StreamingError::Tls(format!("{what} {}: {e}", path.display()))
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert_file)
        .and_then(|it| it.collect())
        .map_err(|e| err("read certificates", &tls.cert_file, &e))?;
    if certs.is_empty() {
        let e = "no certificate in the file";
        return Err(err("read certificates", &tls.cert_file, &e));
    }
    let key = PrivateKeyDer::from_pem_file(&tls.key_file)
        .map_err(|e| err("read key", &tls.key_file, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StreamingError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| err("use the key", &tls.key_file, &e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
