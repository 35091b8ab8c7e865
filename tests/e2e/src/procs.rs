//! The real processes a test runs: the OIDC provider (Node), brokers,
//! resource servers and the `mandate` CLI. Each is killed by its PID when
//! its handle drops, and every wait on one has a timeout.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

/// How long a process may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The repository's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Where the workspace's binaries are built: the directory above the
/// test executable's.
fn binaries() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(Path::parent).unwrap().to_owned()
}

/// A binary built from this workspace, next to the test executable.
pub fn binary(name: &str) -> PathBuf {
    let path = binaries().join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` (make test does)",
        path.display()
    );
    path
}

/// A running child process, killed when dropped.
pub struct Proc {
    child: Child,
    /// The URL it printed.
    pub url: String,
}

impl Proc {
    /// Starts `cmd` and waits for a stdout line `PREFIX URL`.
    pub async fn start(name: &'static str, cmd: Command, prefix: &str) -> Proc {
        Proc::try_start(name, cmd, prefix)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// As [`Proc::start`], returning why the process did not start (it
    /// exited first, say, when its port was taken) in place of panicking.
    /// Its standard error is inherited unless `cmd` sets it.
    pub async fn try_start(
        name: &'static str,
        mut cmd: Command,
        prefix: &str,
    ) -> Result<Proc, String> {
        cmd.stdout(Stdio::piped())
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| format!("starting {name}: {e}"))?;
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let line = match tokio::time::timeout(START_TIMEOUT, lines.next_line()).await {
            Err(_) => Err(format!("{name} printed nothing within {START_TIMEOUT:?}")),
            Ok(Err(e)) => Err(format!("reading {name}'s output: {e}")),
            Ok(Ok(None)) => Err(format!("{name} exited before printing its address")),
            Ok(Ok(Some(line))) => Ok(line),
        };
        let url = line.and_then(|line| {
            line.strip_prefix(prefix)
                .map(|url| url.trim().to_owned())
                .ok_or_else(|| format!("{name} printed {line:?}"))
        });
        let url = match url {
            Ok(url) => url,
            Err(e) => {
                let _ = child.start_kill();
                let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
                return Err(e);
            }
        };
        // Keep draining stdout so that the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Proc { child, url })
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Sends SIGTERM, as a service manager stops a service, and waits up
    /// to `within` for the process to exit: its exit status, or `None` if
    /// it did not (it is killed then).
    pub async fn terminate(mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let pid = self.child.id()?;
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .stdin(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(sent, "kill -TERM {pid}");
        match tokio::time::timeout(within, self.child.wait()).await {
            Ok(Ok(status)) => Some(status),
            _ => {
                self.kill().await;
                None
            }
        }
    }

    /// Kills the process now and waits for it to go.
    pub async fn kill(mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }
}

/// The OIDC provider: `oidc-provider` on Node, on loopback.
pub async fn idp() -> Proc {
    idp_with(&[]).await
}

/// The OIDC provider with extra options, such as `--id-token-ttl`.
pub async fn idp_with(extra: &[&str]) -> Proc {
    let dir = repo().join("tests/idp");
    assert!(
        dir.join("node_modules/oidc-provider").exists(),
        "run `npm ci` in tests/idp (scripts/setup.sh does)"
    );
    let mut cmd = Command::new("node");
    cmd.arg(dir.join("server.mjs"))
        .args(["--port", "0"])
        .args(extra);
    Proc::start("oidc-provider", cmd, "issuer ").await
}

/// Signs `user` in at the provider, as a person would through the
/// browser, and returns the ID token.
pub async fn sign_in(issuer: &str, user: &str, client: &str) -> String {
    sign_in_with_nonce(issuer, user, client, None).await
}

/// As [`sign_in`], with the ID token's `nonce` given (to enroll a key, the
/// thumbprint of the sign-in's session key).
pub async fn sign_in_with_nonce(
    issuer: &str,
    user: &str,
    client: &str,
    nonce: Option<&str>,
) -> String {
    let mut cmd = Command::new("node");
    cmd.arg(repo().join("tests/idp/signin.mjs"))
        .args(["--issuer", issuer, "--user", user, "--client", client])
        .args(["--scope", "openid email profile"])
        .kill_on_drop(true)
        .stdin(Stdio::null());
    if let Some(nonce) = nonce {
        // One form: a thumbprint begins with '-' one time in 64, which
        // parseArgs would take for an option.
        cmd.arg(format!("--nonce={nonce}"));
    }
    let out = tokio::time::timeout(Duration::from_secs(30), cmd.output())
        .await
        .expect("sign-in timed out")
        .unwrap();
    assert!(
        out.status.success(),
        "sign-in failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tokens: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    tokens["id_token"].as_str().unwrap().to_owned()
}

/// A broker process on `database`, trusting `issuer` for `mandate-desktop`.
pub async fn broker(database: &str, issuer: &str, data: &Path, extra: &[&str]) -> Proc {
    let cmd = broker_command("127.0.0.1:0", database, issuer, data, extra);
    Proc::start("mandate-broker", cmd, BROKER_PREFIX).await
}

/// What a broker prints before its URL.
pub const BROKER_PREFIX: &str = "mandate-broker listening on ";

/// The command [`broker`] runs, listening on `listen` (such as
/// `127.0.0.1:0`), for a test that starts it itself ([`Proc::try_start`]).
pub fn broker_command(
    listen: &str,
    database: &str,
    issuer: &str,
    data: &Path,
    extra: &[&str],
) -> Command {
    let mut cmd = Command::new(binary("mandate-broker"));
    cmd.args(["--listen", listen, "--database", database])
        .arg("--data-dir")
        .arg(data)
        .args(["--issuer", &format!("{issuer}=mandate-desktop")])
        .args(["--sse-keepalive", "1"])
        .args(extra)
        .env("RUST_LOG", "warn");
    cmd
}

/// What most end-to-end tests start from: a test provider, and a broker
/// trusting it on a SQLite database (`broker.db` in `dir`, its data beside
/// it).
pub struct Stack {
    pub idp: Proc,
    pub broker: Proc,
}

/// Starts a [`Stack`] in `dir`.
pub async fn stack(dir: &Path) -> Stack {
    let idp = idp().await;
    let database = format!("sqlite://{}/broker.db", dir.display());
    let broker = broker(&database, &idp.url, &dir.join("broker"), &[]).await;
    Stack { idp, broker }
}

/// The example resource server, trusting `broker`.
pub async fn resource_server(broker: &str, max_staleness: u64) -> Proc {
    resource_server_from(&binary("mandate-resource-example"), broker, max_staleness).await
}

/// A resource server built like the example one (its flags and its
/// address line), from `program`: another build of it, say.
pub async fn resource_server_from(program: &Path, broker: &str, max_staleness: u64) -> Proc {
    let cmd = resource_server_command(program, broker, max_staleness);
    Proc::start("mandate-resource-example", cmd, RESOURCE_SERVER_PREFIX).await
}

/// What the example resource server prints before its URL.
pub const RESOURCE_SERVER_PREFIX: &str = "mandate-resource-example listening on ";

/// The command [`resource_server_from`] runs.
pub fn resource_server_command(program: &Path, broker: &str, max_staleness: u64) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(["--listen", "127.0.0.1:0", "--broker", broker])
        .args(["--max-staleness", &max_staleness.to_string()])
        .env("RUST_LOG", "warn");
    cmd
}

/// The test Postgres server's URL (`MANDATE_TEST_PG_URL`), or `None` when
/// there is none (and none is required).
fn test_pg_url() -> Option<String> {
    let Ok(base) = std::env::var("MANDATE_TEST_PG_URL") else {
        assert!(
            std::env::var_os("MANDATE_REQUIRE_PG").is_none(),
            "MANDATE_REQUIRE_PG is set but MANDATE_TEST_PG_URL is not"
        );
        eprintln!(
            "skipped on Postgres: MANDATE_TEST_PG_URL is not set (scripts/pg.sh start prints one)"
        );
        return None;
    };
    Some(base)
}

/// A fresh database on the test Postgres server, or `None` when there is
/// none (and none is required).
pub async fn postgres(name: &str) -> Option<String> {
    let base = test_pg_url()?;
    let db = format!("e2e_{name}_{}", std::process::id());
    let admin = sqlx::PgPool::connect(&base).await.unwrap();
    for sql in [
        format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
        format!("CREATE DATABASE {db}"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&admin)
            .await
            .unwrap();
    }
    admin.close().await;
    let (server, _) = base.rsplit_once('/').unwrap();
    Some(format!("{server}/{db}"))
}

/// A Postgres server of a test's own, for a test that stops and restarts
/// it: the shared test server serves other tests at the same time. It is
/// made by `scripts/pg.sh` with a directory (in the temporary directory,
/// named after this process) and a port of its own, and only where the
/// shared one is configured: `None` as [`postgres`] gives it. Stopped and
/// removed when dropped; one left behind by a test process that was
/// killed is removed by the next.
pub struct PgCluster {
    dir: PathBuf,
    port: u16,
    /// Its URL, on the `postgres` database.
    pub url: String,
}

/// How a [`PgCluster`]'s directory is named, before the process id.
const CLUSTER_PREFIX: &str = "mandate-e2e-pg-";

impl PgCluster {
    /// Makes and starts the cluster, or `None`.
    pub async fn start() -> Option<PgCluster> {
        test_pg_url()?;
        sweep_clusters();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!("{CLUSTER_PREFIX}{}", std::process::id()));
        let mut cluster = PgCluster {
            dir,
            port,
            url: String::new(),
        };
        cluster.url = cluster.pg_sh("start").await.trim().to_owned();
        Some(cluster)
    }

    /// Restarts the server at once (`scripts/pg.sh restart`).
    pub async fn restart(&self) {
        self.pg_sh("restart").await;
    }

    /// Stops the server (`scripts/pg.sh stop`).
    pub async fn stop(&self) {
        self.pg_sh("stop").await;
    }

    /// Starts the stopped server again.
    pub async fn start_again(&self) {
        self.pg_sh("start").await;
    }

    /// Runs `scripts/pg.sh COMMAND` on this cluster; its output.
    async fn pg_sh(&self, command: &str) -> String {
        let mut cmd = Command::new(repo().join("scripts/pg.sh"));
        cmd.arg(command)
            .env("PG_DIR", &self.dir)
            .env("PG_PORT", self.port.to_string())
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let out = tokio::time::timeout(Duration::from_secs(300), cmd.output())
            .await
            .unwrap_or_else(|_| panic!("scripts/pg.sh {command} timed out"))
            .unwrap();
        assert!(
            out.status.success(),
            "scripts/pg.sh {command}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        remove_cluster(&self.dir);
    }
}

/// Stops the cluster in `dir`, if it runs, and removes it.
fn remove_cluster(dir: &Path) {
    let _ = std::process::Command::new(repo().join("scripts/pg.sh"))
        .arg("stop")
        .env("PG_DIR", dir)
        .stdin(Stdio::null())
        .status();
    let _ = std::fs::remove_dir_all(dir);
}

/// Removes the clusters of test processes that are gone.
fn sweep_clusters() {
    sweep_gone(&std::env::temp_dir(), CLUSTER_PREFIX, remove_cluster);
}

/// Calls `remove` on each entry of `dir` named `PREFIX<PID>` whose
/// process is gone.
fn sweep_gone(dir: &Path, prefix: &str, remove: impl Fn(&Path)) {
    // Whether a process is gone is read from /proc.
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(prefix))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            remove(&entry.path());
        }
    }
}

/// A directory of this test process's own for the logs of the processes
/// a test starts, `NAME/PID` beside the workspace's binaries, kept after
/// the test; those of test processes that are gone are removed.
pub fn log_dir(name: &str) -> PathBuf {
    let base = binaries().join(name);
    sweep_gone(&base, "", |dir| {
        let _ = std::fs::remove_dir_all(dir);
    });
    let dir = base.join(std::process::id().to_string());
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs the `mandate` CLI with `args`; returns its exit status success,
/// stdout and stderr.
pub async fn cli(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = Command::new(binary("mandate"));
    cmd.args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("the CLI timed out")
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Makes a gateway witness key at `path` (`mandate-gateway --witness-key
/// PATH --print-witness`) and returns its thumbprint, for the broker's
/// `--witness`.
pub fn witness_key(path: &Path) -> String {
    let printed = std::process::Command::new(binary("mandate-gateway"))
        .arg("--witness-key")
        .arg(path)
        .arg("--print-witness")
        .output()
        .unwrap();
    assert!(printed.status.success(), "{printed:?}");
    String::from_utf8(printed.stdout).unwrap().trim().to_owned()
}

/// The test MCP server: `tests/mcp/server.mjs`, on the official SDK
/// (`@modelcontextprotocol/sdk`), serving the files under `root`.
pub async fn mcp_upstream(root: &Path, extra: &[&str]) -> Proc {
    let dir = repo().join("tests/mcp");
    assert!(
        dir.join("node_modules/@modelcontextprotocol/sdk").exists(),
        "run `npm ci` in tests/mcp (scripts/setup.sh does)"
    );
    let mut cmd = Command::new("node");
    cmd.arg(dir.join("server.mjs"))
        .args(["--port", "0", "--root"])
        .arg(root)
        .args(extra);
    Proc::start("mcp-upstream", cmd, "mcp-upstream listening on ").await
}

/// A project for the test MCP server to serve, in `dir`: a `README.md`
/// that reads `# The project`. Returns its path.
pub fn mcp_project(dir: &Path) -> PathBuf {
    let project = dir.join("project");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(project.join("README.md"), "# The project\n").unwrap();
    project
}

/// A port on 127.0.0.1 that was free a moment ago: for a process whose
/// URL must be known before it starts (the broker names the gateway's as
/// a resource first).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// `mandate-gateway` on `port`, in front of `upstream`, trusting
/// `broker`; its URL is its MCP endpoint's.
pub async fn gateway(port: u16, upstream: &str, broker: &str, extra: &[&str]) -> Proc {
    gateway_env(port, upstream, broker, extra, &[]).await
}

/// [`gateway`], with these environment variables too.
pub async fn gateway_env(
    port: u16,
    upstream: &str,
    broker: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Proc {
    let mut cmd = Command::new(binary("mandate-gateway"));
    cmd.args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--upstream", upstream, "--broker", broker])
        .args(extra)
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied());
    Proc::start("mandate-gateway", cmd, "mandate-gateway listening on ").await
}
