//! How makrcave trusts a Bambu printer's broker. The printer's certificate is issued by
//! Bambu's own CA with the printer's serial as its name, and the printer is reached by an IP
//! address, so the usual check (a public root, the host's name) cannot apply. Instead either
//! the configured CA file vouches for a certificate naming the serial, or the end-entity
//! certificate's SHA-256 equals the pinned fingerprint. There is no third way: a certificate
//! that passes neither check ends the handshake.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_cert_signed_by_trust_anchor, verify_server_name};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
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
            let roots = Arc::new(read_roots(Path::new(file))?);
            Arc::new(CaVerifier { roots, provider: provider.clone(), name, serial: serial.to_string() })
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

/// The CA file's check: the chain up to the CA, then the printer's serial as the name,
/// whatever address was dialled. Bambu's certificates name the serial in their subject's CN;
/// webpki reads only the subject alternative names, so the CN is read here when no SAN
/// matches.
#[derive(Debug)]
struct CaVerifier {
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
    name: ServerName<'static>,
    serial: String,
}

impl ServerCertVerifier for CaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _dialled: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let parsed = ParsedCertificate::try_from(end_entity)?;
        let algorithms = self.provider.signature_verification_algorithms.all;
        verify_server_cert_signed_by_trust_anchor(&parsed, &self.roots, intermediates, now, algorithms)?;
        match verify_server_name(&parsed, &self.name) {
            Ok(()) => Ok(ServerCertVerified::assertion()),
            Err(e) if subject_common_name(end_entity.as_ref()).as_deref() == Some(self.serial.as_bytes()) => {
                tracing::trace!(error = %e, "no subject alternative name; the CN names the printer");
                Ok(ServerCertVerified::assertion())
            }
            Err(e) => Err(e),
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

/// One DER element: its tag, its contents, and what follows it.
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7F);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let len = rest[..count].iter().fold(0usize, |n, b| (n << 8) | usize::from(*b));
        (len, &rest[count..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The subject's common name (OID 2.5.4.3) of a certificate that has already passed the chain
/// check, as its raw bytes; `None` when it has none or the DER is not as expected.
fn subject_common_name(certificate: &[u8]) -> Option<Vec<u8>> {
    const SEQUENCE: u8 = 0x30;
    const CN: [u8; 3] = [0x55, 0x04, 0x03];
    let (_, certificate, _) = der_element(certificate)?;
    let (_, tbs, _) = der_element(certificate)?;
    // version [0] (optional), serialNumber, signature, issuer, validity, subject.
    let (tag, _, mut rest) = der_element(tbs)?;
    if tag == 0xA0 {
        (_, _, rest) = der_element(rest)?;
    }
    for _ in 0..3 {
        (_, _, rest) = der_element(rest)?;
    }
    let (tag, mut subject, _) = der_element(rest)?;
    if tag != SEQUENCE {
        return None;
    }
    while !subject.is_empty() {
        let (_, set, next) = der_element(subject)?;
        subject = next;
        let (_, attribute, _) = der_element(set)?;
        let (_, oid, value) = der_element(attribute)?;
        if oid == CN {
            let (_, name, _) = der_element(value)?;
            return Some(name.to_vec());
        }
    }
    None
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

    fn pem(text: &str) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(text.as_bytes()).expect("a PEM certificate")
    }

    /// A certificate shaped as Bambu's are: the serial in the subject's CN, no subject
    /// alternative name, issued by a CA of its own (made with openssl, valid for a century).
    #[test]
    fn a_ca_vouches_for_a_certificate_whose_cn_is_the_serial() {
        let ca = include_str!("testdata/cn-only-ca.pem");
        let printer = pem(include_str!("testdata/cn-only-printer.pem"));
        assert_eq!(subject_common_name(printer.as_ref()).as_deref(), Some(&b"01S00C123456789"[..]));
        assert_eq!(subject_common_name(pem(ca).as_ref()).as_deref(), Some(&b"Test BBL CA"[..]));
        let mut roots = RootCertStore::empty();
        roots.add(pem(ca)).expect("a CA");
        let verifier = |serial: &str| CaVerifier {
            roots: Arc::new(roots.clone()),
            provider: Arc::new(rustls::crypto::ring::default_provider()),
            name: ServerName::try_from(serial.to_string()).expect("a name"),
            serial: serial.to_string(),
        };
        let dialled = ServerName::try_from("192.0.2.7").expect("an address");
        let check = |serial: &str, cert: &CertificateDer<'_>| {
            verifier(serial).verify_server_cert(cert, &[], &dialled, &[], UnixTime::now())
        };
        assert!(check("01S00C123456789", &printer).is_ok());
        assert!(check("01S00C000000000", &printer).is_err(), "another printer's certificate");
        assert!(check("Test-BBL-CA", &pem(ca)).is_err(), "the CA is not a printer");
        assert!(subject_common_name(b"\x30\x03garbage").is_none());
    }

    #[test]
    fn a_missing_ca_file_is_a_readable_error() {
        let error = client_config(&Trust::CaFile("/nonexistent/ca.pem".into()), "01P00A123").expect_err("no file");
        assert!(error.contains("cannot read the CA file"), "{error}");
        assert!(client_config(&Trust::Fingerprint([0; 32]), "01P00A123").is_ok());
    }
}
