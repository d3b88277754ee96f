//! How makrcave trusts a Bambu printer's broker. The printer's certificate is issued by
//! Bambu's own CA with the printer's serial as its name, and the printer is reached by an IP
//! address, so the usual check (a public root, the host's name) cannot apply. Instead either
//! the configured CA file vouches for a certificate naming the serial, or the end-entity
//! certificate's SHA-256 equals the pinned fingerprint. There is no third way: a certificate
//! that passes neither check ends the handshake.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};

/// What vouches for the printer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// A PEM file with the CA (or CAs) that issued the printer's certificate.
    CaFile(String),
    /// The SHA-256 of the printer's certificate (DER).
    Fingerprint([u8; 32]),
}

/// The TLS settings for one printer, with ring as the provider; the error is a sentence for
/// the machine's view (a CA file that cannot be read, a serial that is not a name).
pub fn client_config(trust: &Trust, serial: &str) -> Result<ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier: Arc<dyn ServerCertVerifier> = match trust {
        Trust::CaFile(file) => {
            let name = ServerName::try_from(serial.to_string())
                .map_err(|_| format!("the serial {serial:?} cannot be a certificate's name"))?;
            let roots = read_roots(Path::new(file))?;
            let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| format!("the CA file {file:?} cannot verify certificates: {e}"))?;
            Arc::new(CaVerifier { inner, name })
        }
        Trust::Fingerprint(fingerprint) => Arc::new(Pinned { fingerprint: *fingerprint, provider: provider.clone() }),
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS settings: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(config)
}

fn read_roots(file: &Path) -> Result<RootCertStore, String> {
    let certificates = CertificateDer::pem_file_iter(file)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read the CA file {file:?}: {e}"))?;
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(certificates);
    if added == 0 {
        return Err(format!("the CA file {file:?} holds no usable certificate"));
    }
    Ok(roots)
}

/// The CA file's check, with the printer's serial as the name whatever address was dialled.
#[derive(Debug)]
struct CaVerifier {
    inner: Arc<WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for CaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _dialled: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner.verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The pinned check: this exact certificate and no other. The handshake's signatures are
/// still verified with the certificate's key, so only the holder of that key passes.
#[derive(Debug)]
struct Pinned {
    fingerprint: [u8; 32],
    provider: Arc<CryptoProvider>,
}

/// The SHA-256 of a certificate, as pinned.
pub fn fingerprint(certificate: &[u8]) -> [u8; 32] {
    Sha256::digest(certificate).into()
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _dialled: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if fingerprint(end_entity.as_ref()) == self.fingerprint {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pinned_certificate_passes_and_any_other_fails() {
        let cert = CertificateDer::from(b"not really DER, only hashed".to_vec());
        let pinned = Pinned {
            fingerprint: fingerprint(cert.as_ref()),
            provider: Arc::new(rustls::crypto::ring::default_provider()),
        };
        let name = ServerName::try_from("192.0.2.7").expect("an address");
        assert!(pinned.verify_server_cert(&cert, &[], &name, &[], UnixTime::now()).is_ok());
        let other = CertificateDer::from(b"another certificate".to_vec());
        assert!(pinned.verify_server_cert(&other, &[], &name, &[], UnixTime::now()).is_err());
    }

    #[test]
    fn a_missing_ca_file_is_a_readable_error() {
        let error = client_config(&Trust::CaFile("/nonexistent/ca.pem".into()), "01P00A123").expect_err("no file");
        assert!(error.contains("cannot read the CA file"), "{error}");
        assert!(client_config(&Trust::Fingerprint([0; 32]), "01P00A123").is_ok());
    }
}
