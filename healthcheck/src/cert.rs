//! A certificate's expiry: the one reader of X.509 `notAfter` in lifeboat, for
//! `--cert-min-days` here and `expect.tls-days` in lifeboat-smoke (which calls it).
//!
//! On the `x509-cert` crate rather than by hand: a DER decoder that checks what it reads
//! (lengths, tags, RFC 5280's UTCTime and GeneralizedTime) costs this static binary 10 KiB
//! (measured; see the workspace Cargo.toml).

use x509_cert::der::asn1::AnyRef;
use x509_cert::der::{Decode as _, Reader as _, SliceReader, Tag, TagNumber};
use x509_cert::time::Validity;

/// The `notAfter` of a DER certificate as Unix seconds, or `None` if it cannot be read.
///
/// Certificate → TBSCertificate → validity, each element's header checked; only the validity
/// is decoded (decoding the names and extensions would double what this costs the binary).
pub fn not_after_unix(der: &[u8]) -> Option<i64> {
    let mut reader = SliceReader::new(der).ok()?;
    let validity = reader
        .sequence(|cert| {
            let validity = cert.sequence(|tbs| {
                let version = Tag::ContextSpecific {
                    constructed: true,
                    number: TagNumber::N0,
                };
                if tbs.peek_tag()? == version {
                    AnyRef::decode(tbs)?;
                }
                // serialNumber, signature, issuer
                for _ in 0..3 {
                    AnyRef::decode(tbs)?;
                }
                let validity = Validity::decode(tbs)?;
                tbs.read_slice(tbs.remaining_len())?; // subject, key, extensions
                Ok(validity)
            })?;
            cert.read_slice(cert.remaining_len())?; // signatureAlgorithm, signature
            Ok(validity)
        })
        .ok()?;
    i64::try_from(validity.not_after.to_unix_duration().as_secs()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_expiry_is_read_in_both_asn1_time_forms() {
        // notAfter 361129143512Z (UTCTime) and 20521205143512Z (GeneralizedTime, from 2050).
        let utc = include_bytes!("testdata/utctime.der");
        let generalized = include_bytes!("testdata/generalizedtime.der");
        assert_eq!(not_after_unix(utc), Some(2_111_582_112));
        assert_eq!(not_after_unix(generalized), Some(2_617_022_112));
    }

    #[test]
    fn garbage_is_no_certificate() {
        assert_eq!(not_after_unix(b""), None);
        assert_eq!(not_after_unix(&[0x30, 0x82, 0xff]), None);
        assert_eq!(not_after_unix(b"garbage"), None);
    }
}
