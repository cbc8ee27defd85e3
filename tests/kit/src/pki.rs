//! Certificates generated at run time (rcgen), in the layouts kubeadm uses.

use std::net::IpAddr;
use std::path::Path;

use jiff::{SignedDuration, Timestamp};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

/// When a certificate is valid.
#[derive(Debug, Clone, Copy)]
pub struct Validity {
    pub not_before: Timestamp,
    pub not_after: Timestamp,
}

impl Validity {
    /// Valid from an hour ago for `days` days.
    pub fn days(days: i64) -> Validity {
        let now = Timestamp::now();
        Validity {
            not_before: now - SignedDuration::from_hours(1),
            not_after: now + SignedDuration::from_hours(24 * days),
        }
    }

    /// Issued `issued_days_ago`, expiring at `expires_in` from now (negative = already expired).
    pub fn expiring_in(issued_days_ago: i64, expires_in: SignedDuration) -> Validity {
        let now = Timestamp::now();
        Validity { not_before: now - SignedDuration::from_hours(24 * issued_days_ago), not_after: now + expires_in }
    }
}

fn to_offset(t: Timestamp) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(t.as_second()).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

/// A certificate and its private key, PEM.
#[derive(Debug, Clone)]
pub struct KeyedCert {
    pub cert_pem: String,
    pub key_pem: String,
    pub cert_der: Vec<u8>,
}

impl KeyedCert {
    /// Writes `<name>.crt` and `<name>.key` (0600) into `dir`.
    pub fn write(&self, dir: &Path, name: &str) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join(format!("{name}.crt")), &self.cert_pem)?;
        write_private(&dir.join(format!("{name}.key")), self.key_pem.as_bytes())
    }
}

/// Writes a file readable only by its owner.
pub fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    f.write_all(data)
}

/// A certificate authority that can issue leaf certificates.
pub struct Ca {
    pub cert: KeyedCert,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").finish_non_exhaustive()
    }
}

/// What a leaf certificate is for.
#[derive(Debug, Clone, Default)]
pub struct LeafSpec {
    pub common_name: String,
    pub organizations: Vec<String>,
    pub dns_names: Vec<String>,
    pub ips: Vec<IpAddr>,
    pub server: bool,
    pub client: bool,
}

impl Ca {
    /// A self-signed CA valid for ten years (kubeadm's CA lifetime).
    pub fn new(common_name: &str) -> Ca {
        Ca::with_validity(common_name, Validity::days(3650))
    }

    pub fn with_validity(common_name: &str, validity: Validity) -> Ca {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        params.not_before = to_offset(validity.not_before);
        params.not_after = to_offset(validity.not_after);
        let key = KeyPair::generate().expect("generating a key pair");
        let cert = params.self_signed(&key).expect("self-signing a CA");
        let keyed = KeyedCert { cert_pem: cert.pem(), key_pem: key.serialize_pem(), cert_der: cert.der().to_vec() };
        Ca { cert: keyed, issuer: Issuer::new(params, key) }
    }

    /// Issues a leaf certificate.
    pub fn issue(&self, spec: &LeafSpec, validity: Validity) -> KeyedCert {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, spec.common_name.as_str());
        for o in &spec.organizations {
            dn.push(DnType::OrganizationName, o.as_str());
        }
        params.distinguished_name = dn;
        params.subject_alt_names = spec
            .dns_names
            .iter()
            .filter_map(|d| d.clone().try_into().ok().map(SanType::DnsName))
            .chain(spec.ips.iter().map(|ip| SanType::IpAddress(*ip)))
            .collect();
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        let mut eku = Vec::new();
        if spec.server {
            eku.push(ExtendedKeyUsagePurpose::ServerAuth);
        }
        if spec.client {
            eku.push(ExtendedKeyUsagePurpose::ClientAuth);
        }
        params.extended_key_usages = eku;
        params.not_before = to_offset(validity.not_before);
        params.not_after = to_offset(validity.not_after);
        params.is_ca = IsCa::NoCa;
        let key = KeyPair::generate().expect("generating a key pair");
        let cert = params.signed_by(&key, &self.issuer).expect("signing a leaf certificate");
        KeyedCert { cert_pem: cert.pem(), key_pem: key.serialize_pem(), cert_der: cert.der().to_vec() }
    }
}

/// A server certificate for the usual loopback names.
pub fn server_spec(common_name: &str, extra_dns: &[&str], ips: &[IpAddr]) -> LeafSpec {
    let mut dns: Vec<String> = vec!["localhost".into()];
    dns.extend(extra_dns.iter().map(|s| s.to_string()));
    let mut all_ips: Vec<IpAddr> = vec![IpAddr::from([127, 0, 0, 1])];
    for ip in ips {
        if !all_ips.contains(ip) {
            all_ips.push(*ip);
        }
    }
    LeafSpec {
        common_name: common_name.into(),
        dns_names: dns,
        ips: all_ips,
        server: true,
        client: false,
        ..Default::default()
    }
}

/// A client certificate (CN = user, O = groups), like kubeadm's admin.conf.
pub fn client_spec(user: &str, groups: &[&str]) -> LeafSpec {
    LeafSpec {
        common_name: user.into(),
        organizations: groups.iter().map(|g| g.to_string()).collect(),
        client: true,
        ..Default::default()
    }
}
