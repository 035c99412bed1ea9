//! A release: a version and the exact image that runs it.
//!
//! VERSION is either a tag or commit of the app's git repository (`deploy.git-repo`), built from
//! a clean export of that revision (`git archive`: nothing of the working tree leaks in), or the
//! tag of an image that already exists (`<deploy.image>:VERSION`). Either way the release is
//! pinned by its image id, and the image also gets a tag of lifeboat's own,
//! `<repository>:lifeboat-<version>`, so that re-tagging or a rebuild of `:VERSION` never takes
//! away the image a rollback needs; the tags of releases older than the last
//! `deploy.keep-releases` are removed.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context};
use bollard::models::ContainerInspectResponse;
use lifeboat::config::Config;
use lifeboat::docker::Docker;
use lifeboat::exit::UsageError;
use serde::{Deserialize, Serialize};
use tracing::info;

/// The label of an image built by lifeboat: the commit it was built from.
const LABEL_REVISION: &str = "org.opencontainers.image.revision";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Release {
    pub version: String,
    /// The image reference containers are created from (`repository:tag`).
    pub image: String,
    /// The image id (`sha256:…`), what a release really is.
    pub image_id: String,
    /// The git commit it was built from, when built by lifeboat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
}

impl Release {
    /// The release a running container is on: its label of ours, else its image's tag.
    pub fn of_container(c: &ContainerInspectResponse) -> Self {
        let image = c
            .config
            .as_ref()
            .and_then(|c| c.image.clone())
            .unwrap_or_default();
        let labels = crate::switch::labels_of(c);
        let version = labels
            .get(crate::switch::LABEL_RELEASE)
            .cloned()
            .unwrap_or_else(|| split_reference(&image).1.to_owned());
        Self {
            version,
            image,
            image_id: c.image.clone().unwrap_or_default(),
            revision: None,
        }
    }

    /// The first 12 hex digits of the image id.
    pub fn short_id(&self) -> &str {
        let id = self.image_id.trim_start_matches("sha256:");
        &id[..id.len().min(12)]
    }
}

/// `registry:5000/team/app:v2` → (`registry:5000/team/app`, `v2`); no tag → `latest`.
pub fn split_reference(image: &str) -> (&str, &str) {
    let image = image.split('@').next().unwrap_or(image);
    match image.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (image, "latest"),
    }
}

/// A version as a Docker tag: `[A-Za-z0-9_.-]`, at most 128 characters.
pub fn tag_of(version: &str) -> String {
    let t: String = version
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(100)
        .collect();
    t.trim_start_matches(['.', '-']).to_owned()
}

/// lifeboat's own tag of a release's image.
pub fn kept_tag(version: &str) -> String {
    format!("lifeboat-{}", tag_of(version))
}

/// Where VERSION's image will come from, for the plan.
pub enum Source {
    /// Built from this commit of the git repository.
    Git { repo: String, commit: String },
    /// An image that exists.
    Image(String),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Git { repo, commit } => write!(
                f,
                "built from commit {} of {repo} (a clean export)",
                &commit[..commit.len().min(12)]
            ),
            Source::Image(i) => write!(f, "the image {i}"),
        }
    }
}

/// The image repository of the releases: configured, or the running service's.
pub fn repository(config: &Config, running: &Release) -> anyhow::Result<String> {
    if let Some(image) = &config.deploy.image {
        return Ok(split_reference(image).0.to_owned());
    }
    if running.image.is_empty() || running.image.starts_with("sha256:") {
        bail!(UsageError::new(format!(
            "the running {} has no image name to take the releases' repository from; set deploy.image (LIFEBOAT_DEPLOY_IMAGE)",
            running.image
        )));
    }
    Ok(split_reference(&running.image).0.to_owned())
}

/// Where VERSION comes from, checked without building anything.
pub async fn locate(
    docker: &Docker,
    config: &Config,
    repo: &str,
    version: &str,
) -> anyhow::Result<Source> {
    if tag_of(version).is_empty() {
        bail!(UsageError::new(format!(
            "VERSION {version:?} has no character a Docker tag can hold"
        )));
    }
    if let Some(git) = &config.deploy.git_repo {
        let commit = git_commit(git, version)?;
        return Ok(Source::Git {
            repo: git.display().to_string(),
            commit,
        });
    }
    let image = format!("{repo}:{}", tag_of(version));
    if docker.image(&image).await?.is_none() {
        bail!(UsageError::new(format!(
            "there is no image {image} on this engine, and no deploy.git-repo (LIFEBOAT_DEPLOY_GIT_REPO) to build VERSION {version} from; build or load the image first"
        )));
    }
    Ok(Source::Image(image))
}

/// The commit VERSION names in the repository (a tag, branch or commit).
fn git_commit(repo: &Path, version: &str) -> anyhow::Result<String> {
    if version.starts_with('-') {
        bail!(UsageError::new(format!(
            "VERSION {version:?} cannot start with '-'"
        )));
    }
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["rev-parse", "--verify", "--quiet"])
        .arg(format!("{version}^{{commit}}"))
        .output()
        .with_context(|| "cannot run git (is it installed?)".to_owned())?;
    if !out.status.success() {
        bail!(UsageError::new(format!(
            "VERSION {version} is not a tag or commit of the git repository {} (deploy.git-repo)",
            repo.display()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Get VERSION's image (building it when it comes from git) and pin it.
pub async fn prepare(
    docker: &Docker,
    config: &Config,
    repo: &str,
    version: &str,
    source: &Source,
) -> anyhow::Result<Release> {
    let image = format!("{repo}:{}", tag_of(version));
    let revision = match source {
        Source::Image(_) => None,
        Source::Git { commit, .. } => {
            let built = docker
                .image(&image)
                .await?
                .and_then(|i| i.config.and_then(|c| c.labels))
                .and_then(|l| l.get(LABEL_REVISION).cloned());
            if built.as_deref() == Some(commit.as_str()) {
                info!("{image} is already built from {commit}");
            } else {
                build(docker, config, &image, version, commit).await?;
            }
            Some(commit.clone())
        }
    };
    let found = docker
        .image(&image)
        .await?
        .with_context(|| format!("the image {image} vanished"))?;
    let image_id = found.id.unwrap_or_default();
    docker
        .tag_image(&image_id, repo, &kept_tag(version))
        .await?;
    Ok(Release {
        version: version.to_owned(),
        image,
        image_id,
        revision,
    })
}

async fn build(
    docker: &Docker,
    config: &Config,
    image: &str,
    version: &str,
    commit: &str,
) -> anyhow::Result<()> {
    let Some(repo) = &config.deploy.git_repo else {
        return Ok(());
    };
    info!(
        step = "building",
        "building {image} from commit {commit} of {}",
        repo.display()
    );
    // The export streams to the engine as git writes it: a large repository is never held
    // in memory whole.
    let mut git = tokio::process::Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["archive", "--format=tar", commit])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("cannot run git archive")?;
    let tar = git.stdout.take().context("git archive's output")?;
    let labels = HashMap::from([
        (LABEL_REVISION.to_owned(), commit.to_owned()),
        (crate::switch::LABEL_RELEASE.to_owned(), version.to_owned()),
    ]);
    let built = docker
        .build_image_stream(tar, &config.deploy.dockerfile, image, labels)
        .await;
    let out = git
        .wait_with_output()
        .await
        .context("cannot run git archive")?;
    if !out.status.success() {
        bail!(
            "git archive of {commit} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let id = built?;
    info!("built {image} ({id})");
    Ok(())
}

/// The image a release's containers are created from: its tag while that still names the
/// release's image, else lifeboat's own tag of it. An image that is gone is an error that says
/// how to get it back.
pub async fn resolve_image(docker: &Docker, release: &Release) -> anyhow::Result<Release> {
    let (repo, _) = split_reference(&release.image);
    for candidate in [
        release.image.clone(),
        format!("{repo}:{}", kept_tag(&release.version)),
    ] {
        if let Some(found) = docker.image(&candidate).await? {
            if found.id.as_deref() == Some(release.image_id.as_str()) {
                return Ok(Release {
                    image: candidate,
                    ..release.clone()
                });
            }
        }
    }
    if docker.image(&release.image_id).await?.is_some() {
        return Ok(Release {
            image: release.image_id.clone(),
            ..release.clone()
        });
    }
    bail!(
        "the image of release {} ({}, {}) is no longer on this engine; deploy it again with lifeboat-deploy {} (it is rebuilt from git or taken from {})",
        release.version,
        release.image,
        release.short_id(),
        release.version,
        release.image
    )
}

#[cfg(test)]
mod tests {
    use super::{split_reference, tag_of};

    #[test]
    fn references_split_into_repository_and_tag() {
        assert_eq!(split_reference("app:v2"), ("app", "v2"));
        assert_eq!(
            split_reference("reg:5000/team/app:v2"),
            ("reg:5000/team/app", "v2")
        );
        assert_eq!(
            split_reference("reg:5000/team/app"),
            ("reg:5000/team/app", "latest")
        );
        assert_eq!(split_reference("app"), ("app", "latest"));
    }

    #[test]
    fn versions_become_valid_tags() {
        assert_eq!(tag_of("v1.2.3"), "v1.2.3");
        assert_eq!(tag_of("release/2026 11"), "release-2026-11");
        assert_eq!(tag_of("-x"), "x");
    }
}
