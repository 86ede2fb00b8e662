//! The certificates and keys of a control plane: one CA, the serving certificate of every
//! component (127.0.0.1 and localhost), a client certificate per user, and the key pair that
//! signs service-account tokens. ECDSA P-256 throughout, which every component accepts.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
};

use crate::Error;

/// A certificate and its private key, in PEM.
pub(crate) struct Pem {
    pub(crate) cert: String,
    pub(crate) key: String,
}

/// The CA that signs everything, and clients trust.
pub(crate) struct Authority {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

fn key(what: &'static str) -> Result<KeyPair, Error> {
    KeyPair::generate().map_err(|source| Error::Pki { what, source })
}

impl Authority {
    pub(crate) fn new() -> Result<Self, Error> {
        let what = "certificate authority";
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, "kiln-test-ca");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let issuer = CertifiedIssuer::self_signed(params, key(what)?)
            .map_err(|source| Error::Pki { what, source })?;
        Ok(Self { issuer })
    }

    /// The CA's certificate and key (the controller manager signs CSRs with them).
    pub(crate) fn pem(&self) -> Pem {
        Pem {
            cert: self.issuer.pem(),
            key: self.issuer.key().serialize_pem(),
        }
    }

    /// The CA certificate in DER, for clients' trust roots.
    pub(crate) fn der(&self) -> Vec<u8> {
        self.issuer.der().to_vec()
    }

    /// A serving certificate for 127.0.0.1, localhost and the in-cluster names of the API.
    pub(crate) fn serving(&self) -> Result<Pem, Error> {
        let what = "serving certificate";
        let names = [
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ];
        let mut params = CertificateParams::new(names.map(str::to_owned).to_vec())
            .map_err(|source| Error::Pki { what, source })?;
        params
            .subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        params
            .distinguished_name
            .push(DnType::CommonName, "kiln-test-apiserver");
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(what, params)
    }

    /// A client certificate for user `name`, in `group` if given (the API server reads the
    /// common name as the user and the organization as a group).
    pub(crate) fn client(&self, name: &str, group: Option<&str>) -> Result<Pem, Error> {
        let what = "client certificate";
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        if let Some(group) = group {
            params
                .distinguished_name
                .push(DnType::OrganizationName, group);
        }
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(what, params)
    }

    fn sign(&self, what: &'static str, params: CertificateParams) -> Result<Pem, Error> {
        let key = key(what)?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|source| Error::Pki { what, source })?;
        Ok(Pem {
            cert: cert.pem(),
            key: key.serialize_pem(),
        })
    }
}

/// The key pair that signs service-account tokens: private key and public key, in PEM.
pub(crate) fn service_account_key() -> Result<Pem, Error> {
    let key = key("service-account signing key")?;
    Ok(Pem {
        cert: key.public_key_pem(),
        key: key.serialize_pem(),
    })
}
