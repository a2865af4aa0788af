//! The trust stores of the functions' outbound HTTPS, built without reading a certificate file.
//!
//! By default both HTTPS stacks load the platform's roots at cold start (`rustls-native-certs`:
//! the CA bundle and every file of the CA directory, PEM-decoded and parsed), once for the AWS SDK
//! and once for reqwest: most of a function's own init CPU (issue 13 §5, docs/cost.md "Cold start
//! as a ratio"). Instead:
//! - the AWS SDK trusts the roots AWS's endpoints chain to: Amazon Trust Services' four roots and
//!   the Starfield Services G2 root that cross-signs them (amazontrust.com/repository), five PEM
//!   certificates compiled in ([`AMAZON_TRUST_SERVICES_ROOTS`]);
//! - reqwest (Graph, the events receiver) trusts Mozilla's root program as `webpki-roots` ships it,
//!   already in trust-anchor form (nothing to decode or parse).
//!
//! Roots change with a rebuild, not with the host's CA package: Lambda functions are redeployed to
//! change anything anyway. moto and the sandbox speak plain HTTP locally, so neither is involved.

use aws_sdk_dynamodb::config::SharedHttpClient;
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
use std::sync::Arc;

/// Amazon Root CA 1–4 and Starfield Services Root Certificate Authority – G2, PEM (SHA-256
/// fingerprints in the tests, checked against Mozilla's list too).
pub const AMAZON_TRUST_SERVICES_ROOTS: &str = include_str!("amazon_trust_services_roots.pem");

/// The AWS SDK's HTTPS client (rustls with aws-lc, the SDK's default provider) trusting
/// [`AMAZON_TRUST_SERVICES_ROOTS`] only.
pub fn aws_https_client() -> SharedHttpClient {
    let trust = TrustStore::empty()
        .with_native_roots(false)
        .with_pem_certificate(AMAZON_TRUST_SERVICES_ROOTS.as_bytes());
    let builder = aws_smithy_http_client::Builder::new().tls_provider(tls::Provider::Rustls(
        tls::rustls_provider::CryptoMode::AwsLc,
    ));
    match TlsContext::builder().with_trust_store(trust).build() {
        Ok(context) => builder.tls_context(context).build_https(),
        // Not reachable with this crate version (building only moves fields); should it ever
        // fail, the SDK's default trust (the platform's roots) is still a working client.
        Err(e) => {
            tracing::warn!(error = %e, "could not build the AWS trust store; using the platform's roots");
            builder.build_https()
        }
    }
}

/// The rustls configuration of every reqwest client: Mozilla's roots from `webpki-roots`,
/// aws-lc (the provider reqwest's `rustls` feature uses), TLS 1.2 and 1.3.
pub fn web_tls() -> Result<rustls::ClientConfig, rustls::Error> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    use sha2::{Digest, Sha256};

    fn embedded() -> Vec<CertificateDer<'static>> {
        CertificateDer::pem_slice_iter(AMAZON_TRUST_SERVICES_ROOTS.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .expect("the embedded roots are PEM")
    }

    /// The fingerprints Amazon Trust Services publishes (amazontrust.com/repository).
    const PUBLISHED_SHA256: [&str; 5] = [
        "8ecde6884f3d87b1125ba31ac3fcb13d7016de7f57cc904fe1cb97c6ae98196e", // Amazon Root CA 1
        "1ba5b2aa8c65401a82960118f80bec4f62304d83cec4713a19c39c011ea46db4", // Amazon Root CA 2
        "18ce6cfe7bf14e60b2e347b8dfe868cb31d02ebb3ada271569f50343b46db3a4", // Amazon Root CA 3
        "e35d28419ed02025cfa69038cd623962458da5c695fbdea3c22b0bfb25897092", // Amazon Root CA 4
        "568d6905a2c88708a4b3025190edcfedb1974a606a13c6e5290fcb2ae63edab5", // Starfield Services G2
    ];

    #[test]
    fn the_embedded_aws_roots_are_the_published_amazon_trust_services_roots() {
        let found: Vec<String> = embedded()
            .iter()
            .map(|der| hex::encode(Sha256::digest(der.as_ref())))
            .collect();
        assert_eq!(found, PUBLISHED_SHA256);
    }

    #[test]
    fn every_embedded_aws_root_is_in_mozillas_root_program_too() {
        // Someone else's list: each root's subject and key must be one of webpki-roots' anchors.
        for der in embedded() {
            let mut store = rustls::RootCertStore::empty();
            store.add(der).expect("a parsable root certificate");
            let anchor = &store.roots[0];
            assert!(
                webpki_roots::TLS_SERVER_ROOTS.iter().any(|known| {
                    known.subject == anchor.subject
                        && known.subject_public_key_info == anchor.subject_public_key_info
                }),
                "not in Mozilla's list: {:?}",
                anchor.subject
            );
        }
    }
}
