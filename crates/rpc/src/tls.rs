//! go-plugin's AutoMTLS: each side makes a certificate for the plugin's
//! lifetime and trusts exactly the other's.
//!
//! The host puts its certificate (PEM) in `PLUGIN_CLIENT_CERT`; the plugin
//! makes its own and puts it (base64 DER, no padding) in the handshake
//! line's last field. Each side then accepts, on TLS 1.3 with ALPN `h2`,
//! only the very certificate it was given: no names or chains are checked,
//! only that the peer holds that certificate's key.
//!
//! Outlet makes ECDSA P-256 certificates; go-plugin makes P-521 ones, whose
//! handshake signatures are checked with the `p521` crate, since ring has
//! no P-521.
//!
//! ```
//! use outlet_rpc::tls::Identity;
//!
//! let host = Identity::generate()?;
//! let plugin = Identity::generate()?;
//! let to_plugin = host.client_config(plugin.cert_der())?;
//! let from_host = plugin.server_config(host.cert_der())?;
//! assert!(Identity::from_line(&plugin.line_cert())? == plugin.cert_der());
//! # Ok::<(), outlet_rpc::tls::TlsError>(())
//! ```

use std::sync::Arc;

use base64::Engine;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{
    AlgorithmIdentifier, CertificateDer, InvalidSignature, PrivateKeyDer, PrivatePkcs8KeyDer,
    ServerName, SignatureVerificationAlgorithm, UnixTime, alg_id,
};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

/// What can go wrong setting up TLS.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// Making a certificate failed.
    #[error("cannot make a certificate: {0}")]
    Generate(String),
    /// The peer's certificate could not be read.
    #[error("the peer's certificate is unreadable: {0}")]
    Certificate(String),
    /// rustls refused the configuration.
    #[error("cannot configure TLS: {0}")]
    Config(#[from] rustls::Error),
}

/// A certificate and its key, made for one plugin process.
pub struct Identity {
    cert: CertificateDer<'static>,
    pem: String,
    key: PrivateKeyDer<'static>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity").finish_non_exhaustive()
    }
}

impl Identity {
    /// A new self-signed certificate for `localhost`, valid for client and
    /// server use, as go-plugin makes them.
    ///
    /// # Errors
    /// [`TlsError::Generate`] if the key or certificate cannot be made.
    pub fn generate() -> Result<Identity, TlsError> {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
            KeyUsagePurpose,
        };
        let failed = |e: rcgen::Error| TlsError::Generate(e.to_string());
        let key = KeyPair::generate().map_err(failed)?;
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).map_err(failed)?;
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
            KeyUsagePurpose::KeyAgreement,
            KeyUsagePurpose::KeyCertSign,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ClientAuth,
            ExtendedKeyUsagePurpose::ServerAuth,
        ];
        let cert = params.self_signed(&key).map_err(failed)?;
        Ok(Identity {
            pem: cert.pem(),
            cert: cert.der().clone(),
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        })
    }

    /// An identity made elsewhere: the first certificate of `cert_pem` and
    /// the key of `key_pem` (PKCS#8, SEC1 or PKCS#1).
    ///
    /// # Errors
    /// [`TlsError::Certificate`] if either holds none.
    pub fn from_pem_pair(cert_pem: &str, key_pem: &str) -> Result<Identity, TlsError> {
        let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| TlsError::Certificate(format!("not a PEM certificate: {e}")))?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| TlsError::Certificate(format!("not a PEM private key: {e}")))?;
        Ok(Identity {
            cert,
            pem: cert_pem.to_owned(),
            key,
        })
    }

    /// The certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert
    }

    /// The certificate, PEM: the value of `PLUGIN_CLIENT_CERT`.
    pub fn cert_pem(&self) -> &str {
        &self.pem
    }

    /// The certificate as the handshake line carries it: base64 of the DER,
    /// without padding.
    pub fn line_cert(&self) -> String {
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(&self.cert)
    }

    /// The DER of a certificate from a handshake line.
    ///
    /// # Errors
    /// [`TlsError::Certificate`] if it is not base64.
    pub fn from_line(cert: &str) -> Result<Vec<u8>, TlsError> {
        base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(cert.trim_end_matches('='))
            .map_err(|e| TlsError::Certificate(format!("not base64: {e}")))
    }

    /// The DER of the first certificate of a PEM text, as in `PLUGIN_CLIENT_CERT`.
    ///
    /// # Errors
    /// [`TlsError::Certificate`] if it holds no certificate.
    pub fn from_pem(pem: &str) -> Result<Vec<u8>, TlsError> {
        CertificateDer::from_pem_slice(pem.as_bytes())
            .map(|cert| cert.to_vec())
            .map_err(|e| TlsError::Certificate(format!("not a PEM certificate: {e}")))
    }

    /// The host's side: present this identity, accept only `server_cert`.
    ///
    /// # Errors
    /// [`TlsError::Config`] if rustls refuses the key.
    pub fn client_config(&self, server_cert: &[u8]) -> Result<Arc<rustls::ClientConfig>, TlsError> {
        let mut config = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Pinned::new(server_cert)))
            .with_client_auth_cert(vec![self.cert.clone()], self.key())?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }

    /// The host's side, for a certificate known only by its SHA-256 (of
    /// the DER): present this identity, accept only a server certificate
    /// of that hash, whose key the server holds.
    ///
    /// # Errors
    /// [`TlsError::Config`] if rustls refuses the key.
    pub fn client_config_sha256(
        &self,
        server_sha256: [u8; 32],
    ) -> Result<Arc<rustls::ClientConfig>, TlsError> {
        let mut config = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Pinned::Sha256(server_sha256)))
            .with_client_auth_cert(vec![self.cert.clone()], self.key())?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }

    /// The plugin's side: present this identity, require `client_cert`.
    ///
    /// # Errors
    /// [`TlsError::Config`] if rustls refuses the key.
    pub fn server_config(&self, client_cert: &[u8]) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(Arc::new(Pinned::new(client_cert)))
            .with_single_cert(vec![self.cert.clone()], self.key())?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }

    fn key(&self) -> PrivateKeyDer<'static> {
        self.key.clone_key()
    }
}

/// The name the host checks for; go-plugin's certificates are all for it.
pub fn server_name() -> ServerName<'static> {
    ServerName::DnsName(rustls::pki_types::DnsName::try_from("localhost").expect("a DNS name"))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The SHA-256 of `der`.
pub fn sha256(der: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(der).into()
}

/// Accepts exactly one certificate, given whole or by its SHA-256, and
/// checks that the peer holds its key.
#[derive(Debug)]
enum Pinned {
    Exact(Vec<u8>),
    Sha256([u8; 32]),
}

/// A presented certificate whose SHA-256 is not the pinned one. Its Debug
/// is its message, which is what rustls shows of it.
#[derive(thiserror::Error)]
#[error("its certificate's SHA-256 is {found}, and the pinned one (cert_sha256) is {expected}")]
struct PinMismatch {
    found: String,
    expected: String,
}

impl std::fmt::Debug for PinMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Pinned {
    fn new(cert: &[u8]) -> Pinned {
        Pinned::Exact(cert.to_vec())
    }

    fn check(&self, presented: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        match self {
            Pinned::Exact(cert) if presented.as_ref() == cert => Ok(()),
            Pinned::Exact(_) => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            )),
            Pinned::Sha256(expected) => {
                let found = sha256(presented);
                if &found == expected {
                    return Ok(());
                }
                let mismatch = PinMismatch {
                    found: hex(&found),
                    expected: hex(expected),
                };
                Err(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::Other(rustls::OtherError(Arc::new(mismatch))),
                ))
            }
        }
    }
}

/// The handshake-signature methods both verifiers share: TLS 1.3 only, with
/// [`ALGORITHMS`]. (rustls's server and client verifiers are two traits with
/// these three methods alike.)
macro_rules! handshake_signatures {
    () => {
        fn verify_tls12_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Err(rustls::Error::General("only TLS 1.3 is offered".into()))
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(message, cert, dss, &ALGORITHMS)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            ALGORITHMS.supported_schemes()
        }
    };
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check(end_entity)
            .map(|()| ServerCertVerified::assertion())
    }

    handshake_signatures!();
}

impl ClientCertVerifier for Pinned {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.check(end_entity)
            .map(|()| ClientCertVerified::assertion())
    }

    handshake_signatures!();
}

/// The handshake signatures accepted: ring's ECDSA and Ed25519, and P-521.
static ALGORITHMS: WebPkiSupportedAlgorithms = WebPkiSupportedAlgorithms {
    all: &[
        webpki::ring::ECDSA_P256_SHA256,
        webpki::ring::ECDSA_P384_SHA384,
        webpki::ring::ED25519,
        &P521,
    ],
    mapping: &[
        (
            SignatureScheme::ECDSA_NISTP256_SHA256,
            &[webpki::ring::ECDSA_P256_SHA256],
        ),
        (
            SignatureScheme::ECDSA_NISTP384_SHA384,
            &[webpki::ring::ECDSA_P384_SHA384],
        ),
        (SignatureScheme::ECDSA_NISTP521_SHA512, &[&P521]),
        (SignatureScheme::ED25519, &[webpki::ring::ED25519]),
    ],
};

/// ECDSA on P-521 with SHA-512, the signatures of go-plugin's certificates.
#[derive(Debug)]
struct P521;

impl SignatureVerificationAlgorithm for P521 {
    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature> {
        use p521::ecdsa::signature::Verifier;
        let key =
            p521::ecdsa::VerifyingKey::from_sec1_bytes(public_key).map_err(|_| InvalidSignature)?;
        let signature =
            p521::ecdsa::Signature::from_der(signature).map_err(|_| InvalidSignature)?;
        key.verify(message, &signature)
            .map_err(|_| InvalidSignature)
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ECDSA_P521
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ECDSA_SHA512
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A TLS handshake between `client` and `server` over an in-memory pipe.
    async fn handshake(
        client: Arc<rustls::ClientConfig>,
        server: Arc<rustls::ServerConfig>,
    ) -> (std::io::Result<()>, std::io::Result<()>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (near, far) = tokio::io::duplex(64 * 1024);
        let accept = async {
            let mut stream = tokio_rustls::TlsAcceptor::from(server).accept(far).await?;
            let mut byte = [0u8; 1];
            stream.read_exact(&mut byte).await?;
            stream.write_all(&byte).await?;
            stream.flush().await
        };
        let connect = async {
            let connector = tokio_rustls::TlsConnector::from(client);
            let mut stream = connector.connect(server_name(), near).await?;
            stream.write_all(b"x").await?;
            stream.flush().await?;
            let mut byte = [0u8; 1];
            stream.read_exact(&mut byte).await?;
            assert_eq!(&byte, b"x");
            Ok(())
        };
        tokio::join!(connect, accept)
    }

    #[tokio::test]
    async fn each_side_accepts_exactly_the_other_s_certificate() {
        let (host, plugin, stranger) = (
            Identity::generate().unwrap(),
            Identity::generate().unwrap(),
            Identity::generate().unwrap(),
        );
        let to_plugin = host.client_config(plugin.cert_der()).unwrap();
        let from_host = plugin.server_config(host.cert_der()).unwrap();
        let (client, server) = handshake(to_plugin.clone(), from_host.clone()).await;
        client.unwrap();
        server.unwrap();

        // A plugin presenting another certificate than its handshake's.
        let impostor = stranger.server_config(host.cert_der()).unwrap();
        let (client, _) = handshake(to_plugin, impostor).await;
        assert!(
            client.is_err(),
            "the host accepted a stranger's certificate"
        );

        // A client that is not the host.
        let intruder = stranger.client_config(plugin.cert_der()).unwrap();
        let (_, server) = handshake(intruder, from_host).await;
        assert!(
            server.is_err(),
            "the plugin accepted a stranger's certificate"
        );
    }

    #[tokio::test]
    async fn a_pinned_sha256_accepts_that_certificate_only() {
        let (plugin, stranger) = (Identity::generate().unwrap(), Identity::generate().unwrap());
        // The host's identity as files would give it.
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["host".to_owned()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        let host = Identity::from_pem_pair(&cert.pem(), &key.serialize_pem()).unwrap();
        let from_host = plugin.server_config(host.cert_der()).unwrap();
        let pinned = host
            .client_config_sha256(sha256(plugin.cert_der()))
            .unwrap();
        let (client, server) = handshake(pinned.clone(), from_host).await;
        client.unwrap();
        server.unwrap();

        let impostor = stranger.server_config(host.cert_der()).unwrap();
        let (client, _) = handshake(pinned, impostor).await;
        let error = client.unwrap_err().to_string();
        assert!(
            error.contains(&hex(&sha256(stranger.cert_der()))) && error.contains("cert_sha256"),
            "{error}"
        );
        assert!(Identity::from_pem_pair(plugin.cert_pem(), "no key").is_err());
    }

    #[test]
    fn certificates_travel_as_go_plugin_writes_them() {
        let identity = Identity::generate().unwrap();
        assert!(!identity.line_cert().contains(['=', '\n', '|']));
        assert_eq!(
            Identity::from_line(&identity.line_cert()).unwrap(),
            identity.cert_der()
        );
        assert_eq!(
            Identity::from_pem(identity.cert_pem()).unwrap(),
            identity.cert_der()
        );
        assert!(Identity::from_pem("not a certificate").is_err());
    }
}
