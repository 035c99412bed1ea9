//! The demo app's compose stack (tests/compose), as every suite brings it up: a project of its
//! own, migrated and seeded as a deploy would, with a working directory for lifeboat's files;
//! brought down with its volumes when dropped, pass or fail.

use std::path::PathBuf;

use crate::{docker_ok, workspace_root, ComposeProject};

/// A demo stack that is up: its compose project and a working directory.
pub struct DemoStack {
    pub project: ComposeProject,
    pub work: tempfile::TempDir,
}

/// How to bring a [`DemoStack`] up; [`DemoStack::up`] takes every default.
#[must_use]
pub struct DemoStackBuilder {
    prefix: String,
    file: PathBuf,
    overrides: Vec<PathBuf>,
    env: Vec<(String, String)>,
    services: Vec<String>,
    migrate: bool,
    seed: bool,
}

impl DemoStack {
    /// tests/compose/docker-compose.yml on image `version`, every service up, migrated and
    /// seeded.
    pub fn up(version: &str) -> Self {
        Self::build(version).up()
    }

    /// The same, to be changed before [`DemoStackBuilder::up`].
    pub fn build(version: &str) -> DemoStackBuilder {
        DemoStackBuilder {
            prefix: "lbtest-demo-".into(),
            file: workspace_root().join("tests/compose/docker-compose.yml"),
            overrides: Vec::new(),
            env: vec![("APP_VERSION".into(), version.into())],
            services: Vec::new(),
            migrate: true,
            seed: true,
        }
    }

    /// `lifeboat-demo-app migrate` in a one-off app container, as a deploy runs it; its output.
    pub fn migrate(&self) -> String {
        self.project
            .ok(&["run", "--rm", "-T", "app", "lifeboat-demo-app", "migrate"])
    }

    /// `lifeboat-demo-app seed` in a one-off app container.
    pub fn seed(&self) -> String {
        self.project
            .ok(&["run", "--rm", "-T", "app", "lifeboat-demo-app", "seed"])
    }

    /// One value (or rows) from the demo database, through psql in the postgres container.
    pub fn sql(&self, query: &str) -> String {
        self.project.ok(&[
            "exec", "-T", "postgres", "psql", "-U", "demo", "-d", "demo", "-tAc", query,
        ])
    }

    /// The container id of `service`.
    pub fn id(&self, service: &str) -> String {
        self.project.ok(&["ps", "-q", service])
    }

    /// The loopback port published for `service`'s `port`.
    pub fn published(&self, service: &str, port: &str) -> u16 {
        let out = self.project.ok(&["port", service, port]);
        out.rsplit(':')
            .next()
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("no published port for {service} {port}: {out:?}"))
    }

    /// The project's containers, one per line: `NAME IMAGE STATE` (fields joined by `sep`).
    pub fn containers(&self, sep: &str) -> String {
        docker_ok(&[
            "ps",
            "-a",
            "--filter",
            &format!("label=com.docker.compose.project={}", self.project.name),
            "--format",
            &format!("{{{{.Names}}}}{sep}{{{{.Image}}}}{sep}{{{{.State}}}}"),
        ])
    }
}

impl DemoStackBuilder {
    /// The project's name starts with `prefix` (what a leftover project is recognised by).
    pub fn prefix(mut self, prefix: &str) -> Self {
        prefix.clone_into(&mut self.prefix);
        self
    }

    /// Another compose file of tests/ instead of docker-compose.yml (e.g. `compose/proxy.yml`).
    pub fn file(mut self, relative_to_tests: &str) -> Self {
        self.file = workspace_root().join("tests").join(relative_to_tests);
        self
    }

    /// One more compose file over it (e.g. `fixtures/smoke-ports.yml`).
    pub fn with_file(mut self, relative_to_tests: &str) -> Self {
        self.overrides
            .push(workspace_root().join("tests").join(relative_to_tests));
        self
    }

    /// A variable for compose's interpolation (`APP_PORT`, `POSTGRES_PASSWORD`…).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Start only these services (the others stay down until the test starts them).
    pub fn services(mut self, services: &[&str]) -> Self {
        self.services = services.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    /// Neither migrate nor seed: the database stays empty.
    pub fn unmigrated(mut self) -> Self {
        self.migrate = false;
        self.seed = false;
        self
    }

    /// Migrate, but do not seed.
    pub fn unseeded(mut self) -> Self {
        self.seed = false;
        self
    }

    /// `compose up -d`, then migrate and seed as asked.
    pub fn up(self) -> DemoStack {
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let mut project = ComposeProject::new(&self.prefix, &self.file, &env);
        for file in &self.overrides {
            project = project.with_file(file);
        }
        let mut up = vec!["up", "-d"];
        up.extend(self.services.iter().map(String::as_str));
        project.ok(&up);
        let stack = DemoStack {
            project,
            work: tempfile::tempdir().expect("tempdir"),
        };
        if self.migrate {
            stack.migrate();
        }
        if self.seed {
            stack.seed();
        }
        stack
    }
}
