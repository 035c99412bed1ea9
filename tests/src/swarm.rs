//! The demo app as a Swarm stack (tests/swarm/stack.yml: nginx in front, app with 2 replicas,
//! worker, postgres, redis) on the single-node swarm `scripts/test` initialises: deployed under a
//! name of its own, migrated and seeded by one-off containers on its attachable network, removed
//! with its volume when dropped, pass or fail.

use std::time::Duration;

use crate::{closed_port, docker, docker_ok, run, unique, wait_for, workspace_root};

/// A deployed stack and a working directory for lifeboat's files.
pub struct SwarmStack {
    pub name: String,
    pub work: tempfile::TempDir,
    /// The loopback port nginx in front of the app publishes.
    pub port: u16,
}

impl SwarmStack {
    /// The stack on app image `version`, every service running, migrated and seeded.
    pub fn up(version: &str) -> Self {
        assert!(
            docker_ok(&["info", "--format", "{{.Swarm.LocalNodeState}}"]) == "active",
            "this engine is in no swarm: run the tests through scripts/test, which initialises one"
        );
        let stack = Self {
            name: unique("lbswarm"),
            work: tempfile::tempdir().expect("tempdir"),
            port: closed_port(),
        };
        stack.deploy(version);
        // The app is healthy only once migrated.
        for service in ["postgres", "redis"] {
            stack.wait_running(service);
        }
        stack.app_command(version, "migrate");
        stack.app_command(version, "seed");
        for service in ["app", "worker", "proxy"] {
            stack.wait_running(service);
        }
        stack
    }

    /// `docker stack deploy` of the stack file with app image `version`.
    pub fn deploy(&self, version: &str) {
        let file = workspace_root().join("tests/swarm/stack.yml");
        let out = run(std::process::Command::new("docker")
            .args(["stack", "deploy", "--resolve-image", "never", "-c"])
            .arg(&file)
            .arg(&self.name)
            .env("APP_VERSION", version)
            .env("PROXY_PORT", self.port.to_string()));
        assert!(
            out.status.success(),
            "docker stack deploy failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The engine's name of `service` (`<stack>_app`).
    pub fn service(&self, service: &str) -> String {
        format!("{}_{service}", self.name)
    }

    /// Wait until `service` runs as many tasks as it wants.
    pub fn wait_running(&self, service: &str) {
        let name = self.service(service);
        wait_for(
            &format!("{name} to run all its replicas"),
            Duration::from_mins(2),
            || {
                let replicas = docker_ok(&[
                    "service",
                    "ls",
                    "--filter",
                    &format!("name={name}"),
                    "--format",
                    "{{.Replicas}}",
                ]);
                let (running, wanted) = replicas.split_once('/')?;
                let wanted = wanted.split_whitespace().next()?;
                (running == wanted && running != "0").then_some(())
            },
        );
    }

    /// `lifeboat-demo-app COMMAND` of image `version` in a one-off container on the stack's
    /// network; its output.
    pub fn app_command(&self, version: &str, command: &str) -> String {
        let network = format!("{}_demo", self.name);
        let image = format!("lifeboat-demo/app:{version}");
        let url = "DATABASE_URL=postgres://demo:demo-password@postgres:5432/demo";
        let args = [
            "run",
            "--rm",
            "--network",
            &network,
            "-e",
            url,
            "-e",
            "DEMO_ADMIN_PASSWORD=demo-password",
            &image,
            "lifeboat-demo-app",
            command,
        ];
        // The overlay network's DNS may take a moment to know a new service.
        wait_for(
            &format!("lifeboat-demo-app {command} on {network}"),
            Duration::from_mins(1),
            || {
                let out = docker(&args);
                out.status
                    .success()
                    .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
            },
        )
    }

    /// The container of `service`'s first running task on this node.
    pub fn container(&self, service: &str) -> String {
        let name = self.service(service);
        wait_for(
            &format!("a running container of {name}"),
            Duration::from_mins(1),
            || {
                let ids = docker_ok(&[
                    "ps",
                    "-q",
                    "--filter",
                    &format!("label=com.docker.swarm.service.name={name}"),
                ]);
                ids.lines().next().map(str::to_owned)
            },
        )
    }

    /// One value (or rows) from the demo database, through psql in the database's task.
    pub fn sql(&self, query: &str) -> String {
        let id = self.container("postgres");
        docker_ok(&[
            "exec", &id, "psql", "-U", "demo", "-d", "demo", "-tAc", query,
        ])
    }

    /// Where nginx in front of the app answers.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `docker service inspect` of `service`, formatted by `format`.
    pub fn inspect(&self, service: &str, format: &str) -> String {
        docker_ok(&[
            "service",
            "inspect",
            &self.service(service),
            "--format",
            format,
        ])
    }

    /// The image every task of `service` that should run is on, one per line.
    pub fn task_images(&self, service: &str) -> Vec<String> {
        let out = docker_ok(&[
            "service",
            "ps",
            &self.service(service),
            "--filter",
            "desired-state=running",
            "--format",
            "{{.Image}}",
        ]);
        out.lines().map(str::to_owned).collect()
    }

    /// The environment that points lifeboat at this stack.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("LIFEBOAT_STACK", self.name.clone()),
            ("LIFEBOAT_ENGINE", "swarm".into()),
        ]
    }
}

impl Drop for SwarmStack {
    fn drop(&mut self) {
        let _ = docker(&["stack", "rm", &self.name]);
        // Jobs and one-off containers lifeboat may have left behind a failing test.
        for id in docker_ok(&[
            "service",
            "ls",
            "-q",
            "--filter",
            &format!("label=lifeboat.job={}", self.name),
        ])
        .lines()
        {
            let _ = docker(&["service", "rm", id]);
        }
        // The volume is free once the tasks are gone.
        let volume = format!("{}_postgres_data", self.name);
        let started = std::time::Instant::now();
        while started.elapsed() < Duration::from_mins(1) {
            if docker(&["volume", "rm", &volume]).status.success()
                || !docker(&["volume", "inspect", &volume]).status.success()
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        let network = format!("{}_demo", self.name);
        while started.elapsed() < Duration::from_mins(1)
            && docker(&["network", "inspect", &network]).status.success()
        {
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}
