//! TLS between the API and the agents' endpoints (DESIGN decision 4).
//!
//! By default the service is its own certificate authority: the CA's key
//! is derived from the service key that the API and every agent already
//! share (the agent tokens need it), so any process holding that key has
//! the same CA without another file to copy, and only such a process can
//! make a certificate the API accepts. Each agent makes itself a fresh
//! leaf certificate at start, for the names it is reached at. An operator
//! with a PKI of their own gives the API the CA to trust
//! (`[compute] agent_ca_file`) and each agent its certificate and key
//! (`[compute] tls_cert_file`, `tls_key_file`) instead.

use std::path::Path;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use zun_secrets::SecretKey;

/// What the CA's key is derived for; changing it changes the CA.
const CA_PURPOSE: &str = "zun agent certificate authority v1";
/// The CA's subject, part of the trust anchor every process derives alike.
const CA_NAME: &str = "zun agent CA";
/// How long an agent's own certificate is valid; it makes a new one at
/// every start.
const LEAF_VALIDITY_DAYS: u64 = 365;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("making a certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("setting up TLS: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("reading {path}: {reason}")]
    Pem { path: String, reason: String },
}

/// The certificate authority the service derives from its key.
pub struct AgentCa {
    certificate: CertificateDer<'static>,
    certificate_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl AgentCa {
    /// The CA of every process holding `key`: the same key pair and
    /// subject, so the same trust anchor.
    pub fn derive(key: &SecretKey) -> Result<Self, TlsError> {
        let seed = key.derive(CA_PURPOSE);
        let key_pair = KeyPair::try_from(&PrivateKeyDer::Pkcs8(ed25519_pkcs8(&seed)))?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = name(CA_NAME);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let certificate = params.self_signed(&key_pair)?;
        Ok(Self {
            certificate_pem: certificate.pem(),
            certificate: certificate.der().clone(),
            issuer: Issuer::new(params, key_pair),
        })
    }

    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.certificate
    }

    /// The certificate as PEM, for clients other than the API (`curl
    /// --cacert`) and for an operator's own records.
    pub fn certificate_pem(&self) -> &str {
        &self.certificate_pem
    }

    /// A certificate, with a fresh key, for an endpoint reached at `names`
    /// (IP addresses or DNS names): the chain to serve and its key.
    pub fn issue(&self, names: Vec<String>) -> Result<ServerIdentity, TlsError> {
        let key_pair = KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
        let mut params = CertificateParams::new(names)?;
        params.distinguished_name = name("zun agent endpoint");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let today = chrono::Utc::now().date_naive();
        let (year, month, day) = ymd(today - chrono::Days::new(1));
        params.not_before = rcgen::date_time_ymd(year, month, day);
        let (year, month, day) = ymd(today + chrono::Days::new(LEAF_VALIDITY_DAYS));
        params.not_after = rcgen::date_time_ymd(year, month, day);
        let certificate = params.signed_by(&key_pair, &self.issuer)?;
        Ok(ServerIdentity {
            chain: vec![certificate.der().clone(), self.certificate.clone()],
            key: PrivateKeyDer::Pkcs8(key_pair.serialize_der().into()),
        })
    }
}

/// A certificate chain and its key, as an endpoint serves them.
#[derive(Debug)]
pub struct ServerIdentity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl ServerIdentity {
    /// An operator's PEM files: the certificate (then its chain) and key.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let chain = certificates_from_pem(cert)?;
        let key = PrivateKeyDer::from_pem_file(key).map_err(|e| pem_error(key, &e))?;
        Ok(Self { chain, key })
    }

    pub fn server_config(self) -> Result<ServerConfig, TlsError> {
        Ok(ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(self.chain, self.key)?)
    }
}

/// The names an endpoint's certificate must carry: the host of the URL the
/// API is given, and the address it listens on when that is specific.
pub fn endpoint_names(url: &str, bound: std::net::SocketAddr) -> Vec<String> {
    let mut names = Vec::new();
    if let Some(host) = reqwest::Url::parse(url)
        .ok()
        .as_ref()
        .and_then(|u| u.host_str())
    {
        // An IPv6 host comes in brackets.
        names.push(
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
        );
    }
    let ip = bound.ip().to_string();
    if !bound.ip().is_unspecified() && !names.contains(&ip) {
        names.push(ip);
    }
    names
}

/// Every certificate of a PEM file.
pub fn certificates_from_pem(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(path, &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, &e))?;
    if certificates.is_empty() {
        return Err(TlsError::Pem {
            path: path.display().to_string(),
            reason: "no certificate in it".into(),
        });
    }
    Ok(certificates)
}

/// What the API trusts when it calls agents: `anchors` only, not the
/// system's roots.
pub fn client_config(anchors: &[CertificateDer<'static>]) -> Result<ClientConfig, TlsError> {
    let mut roots = RootCertStore::empty();
    for anchor in anchors {
        roots.add(anchor.clone())?;
    }
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// ring, as reqwest's rustls uses: named, so no process-wide default is
/// needed.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    name
}

fn ymd(date: chrono::NaiveDate) -> (i32, u8, u8) {
    use chrono::Datelike;
    // chrono's months and days always fit.
    let month = u8::try_from(date.month()).unwrap_or(1);
    let day = u8::try_from(date.day()).unwrap_or(1);
    (date.year(), month, day)
}

/// The PKCS #8 document of an Ed25519 private key from its 32-byte seed:
/// the fixed prefix of RFC 8410 section 7 (version 0, algorithm id-Ed25519
/// 1.3.101.112, an OCTET STRING holding the seed as an OCTET STRING).
fn ed25519_pkcs8(seed: &[u8; 32]) -> PrivatePkcs8KeyDer<'static> {
    const PREFIX: [u8; 16] = [
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    let mut document = PREFIX.to_vec();
    document.extend_from_slice(seed);
    PrivatePkcs8KeyDer::from(document)
}

fn pem_error(path: &Path, error: &dyn std::fmt::Display) -> TlsError {
    TlsError::Pem {
        path: path.display().to_string(),
        reason: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use rustls::pki_types::ServerName;
    use rustls::{ClientConnection, ServerConnection};

    use super::*;

    fn new_key() -> (tempfile::TempDir, SecretKey) {
        let dir = tempfile::tempdir().expect("temp dir");
        let key = SecretKey::load_or_create(&dir.path().join("secret.key")).expect("key");
        (dir, key)
    }

    /// A whole handshake in memory: Ok when the client accepts the server.
    fn handshake(
        client: &ClientConfig,
        server: ServerConfig,
        name: &str,
    ) -> Result<(), rustls::Error> {
        let name = ServerName::try_from(name.to_owned()).expect("a server name");
        let mut client = ClientConnection::new(Arc::new(client.clone()), name)?;
        let mut server = ServerConnection::new(Arc::new(server))?;
        for _ in 0..10 {
            let mut wire = Vec::new();
            client.write_tls(&mut wire).expect("client writes");
            server.read_tls(&mut wire.as_slice()).expect("server reads");
            server.process_new_packets()?;
            let mut wire = Vec::new();
            server.write_tls(&mut wire).expect("server writes");
            client.read_tls(&mut wire.as_slice()).expect("client reads");
            client.process_new_packets()?;
            if !client.is_handshaking() && !server.is_handshaking() {
                return Ok(());
            }
        }
        panic!("the handshake did not end");
    }

    #[test]
    fn every_holder_of_the_key_derives_the_same_ca() {
        let (_dir, key) = new_key();
        let one = AgentCa::derive(&key).expect("derive");
        let two = AgentCa::derive(&key).expect("derive");
        assert_eq!(one.certificate(), two.certificate());
        let (_other_dir, other) = new_key();
        let theirs = AgentCa::derive(&other).expect("derive");
        assert_ne!(one.certificate(), theirs.certificate());
    }

    #[test]
    fn the_api_accepts_an_agent_of_its_ca_for_the_name_it_calls() {
        let (_dir, key) = new_key();
        // The agent and the API derive the CA each in its own process.
        let agent = AgentCa::derive(&key).expect("derive");
        let api = client_config(&[AgentCa::derive(&key).expect("derive").certificate().clone()])
            .expect("client config");
        let issued = || {
            agent
                .issue(vec!["127.0.0.1".into(), "agent.example".into()])
                .expect("issue")
                .server_config()
                .expect("server config")
        };
        handshake(&api, issued(), "127.0.0.1").expect("by address");
        handshake(&api, issued(), "agent.example").expect("by name");
        let wrong_name = handshake(&api, issued(), "10.0.0.9");
        assert!(wrong_name.is_err(), "{wrong_name:?}");
    }

    #[test]
    fn an_agent_of_another_ca_is_refused() {
        let (_dir, key) = new_key();
        let (_other_dir, other) = new_key();
        let api = client_config(&[AgentCa::derive(&key).expect("derive").certificate().clone()])
            .expect("client config");
        let stranger = AgentCa::derive(&other)
            .and_then(|ca| ca.issue(vec!["127.0.0.1".into()]))
            .and_then(ServerIdentity::server_config)
            .expect("server config");
        let refused = handshake(&api, stranger, "127.0.0.1");
        assert!(
            matches!(refused, Err(rustls::Error::InvalidCertificate(_))),
            "{refused:?}"
        );
    }

    #[test]
    fn endpoint_names_come_from_the_url_and_a_specific_address() {
        let bound: std::net::SocketAddr = "127.0.0.1:7000".parse().expect("addr");
        let any: std::net::SocketAddr = "0.0.0.0:7000".parse().expect("addr");
        assert_eq!(
            endpoint_names("https://127.0.0.1:7000", bound),
            ["127.0.0.1"]
        );
        assert_eq!(
            endpoint_names("https://agent-3.example:7000", bound),
            ["agent-3.example", "127.0.0.1"]
        );
        assert_eq!(endpoint_names("https://[fd00::3]:7000", any), ["fd00::3"]);
        assert!(endpoint_names("not a url", any).is_empty());
    }
}
