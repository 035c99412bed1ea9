//! S3-compatible storage: MinIO, DigitalOcean Spaces and AWS with one client.
//!
//! The endpoint is configurable and path-style addressing is on by default (MinIO needs it; the
//! others accept it). Credentials come from lifeboat's configuration only: no credential chain,
//! no instance metadata probe that hangs for seconds on a VPS. Every object lifeboat writes lives
//! under a prefix (`lifeboat/` by default), so it never touches another tool's objects.

use std::time::Duration;

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_http_client::tls;

use crate::config::S3Settings;

#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    #[error("S3 {op} s3://{bucket}/{key} at {endpoint}: {message}")]
    Op {
        op: &'static str,
        endpoint: String,
        bucket: String,
        key: String,
        message: String,
        /// The HTTP status the storage answered with, when it answered.
        status: Option<u16>,
    },
}

impl S3Error {
    /// The storage answered, and said no (4xx: wrong keys, no such bucket, no permission): a
    /// setting to fix, not an outage to wait out.
    pub fn refused(&self) -> bool {
        let S3Error::Op { status, .. } = self;
        status.is_some_and(|s| (400..500).contains(&s))
    }
}

/// An object as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    /// The name below lifeboat's prefix.
    pub name: String,
    pub size: u64,
    pub modified: Option<chrono::DateTime<chrono::Utc>>,
}

/// A bucket, with lifeboat's prefix.
#[derive(Debug, Clone)]
pub struct Bucket {
    client: aws_sdk_s3::Client,
    name: String,
    prefix: String,
    endpoint: String,
}

/// S3's most parts in one multipart upload.
pub const MAX_PARTS: u64 = 10_000;

/// The part size for a file of `size` bytes: `wanted`, at least 5 MiB (S3's minimum), and
/// large enough (whole MiB) that the file fits in [`MAX_PARTS`] parts.
pub fn part_size_for(size: u64, wanted: usize) -> usize {
    const MIB: u64 = 1024 * 1024;
    let needed = size.div_ceil(MAX_PARTS).div_ceil(MIB) * MIB;
    let wanted = u64::try_from(wanted).unwrap_or(u64::MAX);
    usize::try_from(wanted.max(5 * MIB).max(needed)).unwrap_or(usize::MAX)
}

/// Attempts of each request (the first and the retries) before an upload gives up.
pub const ATTEMPTS: u32 = 5;

/// Every request is retried on a connection error, a timeout, a 5xx or throttling, with
/// exponential backoff and jitter from 1 s (about 1, 2, 4, 8 s): a storage that blinks for a
/// few seconds at 2 a.m. costs a short wait, not a night without an off-site copy.
fn retry_config() -> aws_sdk_s3::config::retry::RetryConfig {
    aws_sdk_s3::config::retry::RetryConfig::standard()
        .with_max_attempts(ATTEMPTS)
        .with_initial_backoff(Duration::from_secs(1))
        .with_max_backoff(Duration::from_secs(20))
}

impl Bucket {
    pub fn new(settings: &S3Settings) -> Self {
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let credentials = Credentials::new(
            &settings.access_key_id,
            settings.secret_access_key.expose(),
            None,
            None,
            "lifeboat-config",
        );
        let timeouts = aws_sdk_s3::config::timeout::TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(60))
            .build();
        let mut builder = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .http_client(http)
            .region(Region::new(settings.region.clone()))
            .credentials_provider(credentials)
            .force_path_style(settings.path_style)
            .timeout_config(timeouts)
            .retry_config(retry_config());
        if let Some(endpoint) = &settings.endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        Self {
            client: aws_sdk_s3::Client::from_conf(builder.build()),
            name: settings.bucket.clone(),
            prefix: settings.prefix.clone(),
            endpoint: settings.endpoint.clone().unwrap_or_else(|| "AWS".into()),
        }
    }

    /// The SDK client, for what this module does not wrap (multipart uploads).
    pub fn client(&self) -> &aws_sdk_s3::Client {
        &self.client
    }

    pub fn bucket(&self) -> &str {
        &self.name
    }

    /// The full key of `name` under lifeboat's prefix.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// A request that failed, said in a line (see [`describe`]).
    fn err<E: ProvideErrorMetadata + std::error::Error + 'static>(
        &self,
        op: &'static str,
        name: &str,
        e: &SdkError<E, HttpResponse>,
    ) -> S3Error {
        let status = match e {
            SdkError::ServiceError(ctx) => Some(ctx.raw().status().as_u16()),
            _ => None,
        };
        let mut err = self.failed(op, name, describe(e));
        let S3Error::Op { status: s, .. } = &mut err;
        *s = status;
        err
    }

    /// A local read that failed (the file being uploaded, a body being downloaded).
    fn read_err(&self, op: &'static str, name: &str, e: &dyn std::error::Error) -> S3Error {
        self.failed(op, name, innermost(e))
    }

    fn failed(&self, op: &'static str, name: &str, message: String) -> S3Error {
        S3Error::Op {
            op,
            endpoint: self.endpoint.clone(),
            bucket: self.name.clone(),
            key: self.key(name),
            message,
            status: None,
        }
    }

    /// Check that the bucket exists and the credentials may use it.
    pub async fn check(&self) -> Result<(), S3Error> {
        self.client
            .head_bucket()
            .bucket(&self.name)
            .send()
            .await
            .map(drop)
            .map_err(|e| self.err("head bucket", "", &e))
    }

    pub async fn put(&self, name: &str, body: Vec<u8>) -> Result<(), S3Error> {
        self.client
            .put_object()
            .bucket(&self.name)
            .key(self.key(name))
            .body(ByteStream::from(body))
            .send()
            .await
            .map(drop)
            .map_err(|e| self.err("put", name, &e))
    }

    /// A small object whole, at most `max` bytes: a larger one is an error, never read into
    /// memory (what is in a bucket is whoever wrote it's choice).
    pub async fn get(&self, name: &str, max: usize) -> Result<Vec<u8>, S3Error> {
        let mut out = self
            .client
            .get_object()
            .bucket(&self.name)
            .key(self.key(name))
            .send()
            .await
            .map_err(|e| self.err("get", name, &e))?;
        let too_big = || self.failed("get", name, format!("larger than {max} bytes; not read"));
        let claimed = out.content_length.and_then(|n| usize::try_from(n).ok());
        if claimed.is_some_and(|n| n > max) {
            return Err(too_big());
        }
        let mut data = Vec::with_capacity(claimed.unwrap_or(0).min(max));
        while let Some(chunk) = out.body.next().await {
            let chunk = chunk.map_err(|e| self.read_err("get", name, &e))?;
            if data.len() + chunk.len() > max {
                return Err(too_big());
            }
            data.extend_from_slice(&chunk);
        }
        Ok(data)
    }

    pub async fn delete(&self, name: &str) -> Result<(), S3Error> {
        self.client
            .delete_object()
            .bucket(&self.name)
            .key(self.key(name))
            .send()
            .await
            .map(drop)
            .map_err(|e| self.err("delete", name, &e))
    }

    /// Upload a file of any size as a multipart upload, `part_size` bytes at a time (at least
    /// 5 MiB, S3's minimum, and more for a file that would need over [`MAX_PARTS`] parts), so
    /// memory stays bounded. An upload that fails is aborted, leaving no half object (and no
    /// stored parts) behind. Each part is retried by the SDK with backoff.
    pub async fn upload_file(
        &self,
        name: &str,
        path: &std::path::Path,
        part_size: usize,
    ) -> Result<u64, S3Error> {
        use tokio::io::AsyncReadExt;
        let key = self.key(name);
        let size = tokio::fs::metadata(path)
            .await
            .map_err(|e| self.read_err("read", name, &e))?
            .len();
        let part_size = part_size_for(size, part_size);
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.name)
            .key(&key)
            .send()
            .await
            .map_err(|e| self.err("start upload", name, &e))?;
        let upload_id = created.upload_id().unwrap_or_default().to_owned();
        let result: Result<u64, S3Error> = async {
            let mut file = tokio::fs::File::open(path)
                .await
                .map_err(|e| self.read_err("read", name, &e))?;
            let mut parts = Vec::new();
            let mut total = 0u64;
            let mut buf = vec![0u8; part_size];
            let bar = crate::progress::Bar::bytes(&format!("uploading {name}"), Some(size));
            for number in 1.. {
                let mut filled = 0;
                while filled < part_size {
                    let n = file
                        .read(&mut buf[filled..])
                        .await
                        .map_err(|e| self.read_err("read", name, &e))?;
                    if n == 0 {
                        break;
                    }
                    filled += n;
                }
                if filled == 0 && number > 1 {
                    break;
                }
                let part = self
                    .client
                    .upload_part()
                    .bucket(&self.name)
                    .key(&key)
                    .upload_id(&upload_id)
                    .part_number(number)
                    .body(ByteStream::from(buf[..filled].to_vec()))
                    .send()
                    .await
                    .map_err(|e| self.err("upload part", name, &e))?;
                parts.push(
                    aws_sdk_s3::types::CompletedPart::builder()
                        .part_number(number)
                        .set_e_tag(part.e_tag().map(str::to_owned))
                        .build(),
                );
                total += filled as u64;
                bar.inc(filled as u64);
                if filled < part_size {
                    break;
                }
            }
            self.client
                .complete_multipart_upload()
                .bucket(&self.name)
                .key(&key)
                .upload_id(&upload_id)
                .multipart_upload(
                    aws_sdk_s3::types::CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .send()
                .await
                .map_err(|e| self.err("complete upload", name, &e))?;
            Ok(total)
        }
        .await;
        if result.is_err() {
            let _ = self
                .client
                .abort_multipart_upload()
                .bucket(&self.name)
                .key(&key)
                .upload_id(&upload_id)
                .send()
                .await;
        }
        result
    }

    /// Every object whose name (below lifeboat's prefix) starts with `sub_prefix`.
    pub async fn list(&self, sub_prefix: &str) -> Result<Vec<Object>, S3Error> {
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.name)
            .prefix(self.key(sub_prefix))
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.err("list", sub_prefix, &e))?;
            for o in page.contents() {
                let Some(key) = o.key() else { continue };
                out.push(Object {
                    name: key.strip_prefix(&self.prefix).unwrap_or(key).to_owned(),
                    size: o.size().and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
                    modified: o
                        .last_modified()
                        .and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos())),
                });
            }
        }
        Ok(out)
    }
}

/// A failed request in a line: the storage's status, error code and message (`403
/// InvalidAccessKeyId: The AWS Access Key Id you provided does not exist in our records.`), or
/// why no answer came (its innermost cause: `Connection refused`). The SDK's own rendering
/// nests every layer's debug output, which is no reading for a person or a CI log.
fn describe<E: ProvideErrorMetadata + std::error::Error + 'static>(
    e: &SdkError<E, HttpResponse>,
) -> String {
    use std::fmt::Write as _;
    match e {
        SdkError::ServiceError(ctx) => {
            let status = ctx.raw().status().as_u16();
            let err = ctx.err();
            let mut line = format!("answered {status}");
            if let Some(code) = err.code() {
                let _ = write!(line, " ({code})");
            }
            if let Some(message) = err.message().filter(|m| !m.is_empty()) {
                let _ = write!(line, ": {message}");
            }
            if status == 401 || status == 403 {
                line.push_str(
                    "; check S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY, and that they may use the bucket",
                );
            }
            // What the retry policy retries: so many tries were made.
            if status >= 500 || status == 429 {
                let _ = write!(line, " ({ATTEMPTS} tries, backoff about 1, 2, 4, 8 s)");
            }
            line
        }
        SdkError::TimeoutError(_) => {
            format!("no answer in time ({ATTEMPTS} tries, backoff about 1, 2, 4, 8 s)")
        }
        SdkError::DispatchFailure(_) => format!(
            "cannot reach it: {} ({ATTEMPTS} tries, backoff about 1, 2, 4, 8 s)",
            innermost(e)
        ),
        _ => innermost(e),
    }
}

/// The deepest cause of an error: the part a person can act on.
fn innermost(e: &dyn std::error::Error) -> String {
    let mut e = e;
    while let Some(source) = e.source() {
        e = source;
    }
    e.to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn parts_grow_with_the_file_so_it_fits_in_ten_thousand() {
        const MIB: usize = 1024 * 1024;
        assert_eq!(super::part_size_for(100, 16 * MIB), 16 * MIB);
        assert_eq!(super::part_size_for(100, MIB), 5 * MIB, "S3's minimum");
        // 500 GiB: 16 MiB parts would be 32,000 of them.
        let size = 500 * 1024 * MIB as u64;
        let part = super::part_size_for(size, 16 * MIB);
        assert!(size.div_ceil(part as u64) <= super::MAX_PARTS, "{part}");
        assert_eq!(part % MIB, 0);
    }
}
