//! A private PostgreSQL cluster for tests and `cargo xtask chaos postgres`:
//! the machine's PostgreSQL (Debian's `postgresql` package, installed when
//! missing), `initdb` into a temporary directory, listening on 127.0.0.1 on
//! a free port with its socket in that directory, stopped and removed when
//! the guard drops. Nothing is set up by hand and nothing outside the
//! temporary directory is touched.
//!
//! PostgreSQL refuses to run as root: as root, the cluster runs as the
//! `postgres` user (created by the package).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::util::{Result, output, run, step, succeeds};

/// The environment variable that gives tests the cluster's URL (a
/// superuser, database `postgres`).
pub(crate) const URL_VAR: &str = "PAE_TEST_POSTGRES_URL";

/// A running cluster; dropping it stops the server and removes its files.
pub(crate) struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    user: Option<String>,
}

impl Cluster {
    /// Installs PostgreSQL if needed, creates and starts a cluster.
    pub(crate) fn start() -> Result<Self> {
        let bin = installed_bin()?;
        let user = if is_root() {
            Some(server_user()?)
        } else {
            None
        };
        let dir = std::env::temp_dir().join(format!(
            "pae-postgres-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos())
        ));
        fs::create_dir_all(&dir)?;
        let cluster = Self {
            bin,
            port: free_port()?,
            dir,
            user,
        };
        if let Some(user) = &cluster.user {
            run(Command::new("chown").arg(user).arg(&cluster.dir))?;
        }
        step(&format!(
            "starting a private PostgreSQL on 127.0.0.1:{} ({})",
            cluster.port,
            cluster.dir.display()
        ));
        let started = Instant::now();
        let mut initdb = cluster.command("initdb");
        initdb.arg("-D").arg(cluster.data()).args([
            "-A",
            "trust",
            "-U",
            "pae",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]);
        output(&mut initdb)?;
        cluster.start_server()?;
        eprintln!(
            "PostgreSQL ready after {:.1} s: {}",
            started.elapsed().as_secs_f64(),
            cluster.url()
        );
        Ok(cluster)
    }

    /// The superuser URL of database `postgres`.
    pub(crate) fn url(&self) -> String {
        self.url_of("postgres")
    }

    /// The URL of a database of the cluster.
    pub(crate) fn url_of(&self, database: &str) -> String {
        format!("postgres://pae@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates a database.
    pub(crate) fn create_database(&self, name: &str) -> Result<()> {
        self.sql("postgres", &format!("CREATE DATABASE {name}"))
            .map(drop)
    }

    /// Runs SQL with psql and returns its unaligned, tuples-only output
    /// (fields separated by `|`).
    pub(crate) fn sql(&self, database: &str, sql: &str) -> Result<String> {
        output(
            Command::new(self.bin.join("psql"))
                .args([
                    "-X",
                    "-q",
                    "-At",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-h",
                    "127.0.0.1",
                    "-U",
                    "pae",
                ])
                .arg("-p")
                .arg(self.port.to_string())
                .arg("-d")
                .arg(database)
                .arg("-c")
                .arg(sql),
        )
    }

    /// Stops the server at once, as a crash would (`pg_ctl stop -m
    /// immediate`: no checkpoint, clients cut off).
    pub(crate) fn stop_immediately(&self) -> Result<()> {
        let mut stop = self.command("pg_ctl");
        stop.arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"]);
        output(&mut stop).map(drop)
    }

    /// Starts the server (again) on the same port; waits until it accepts
    /// connections (after a crash, once recovery is done).
    pub(crate) fn start_server(&self) -> Result<()> {
        let options = format!(
            "-p {} -h 127.0.0.1 -k {} -c max_connections=300 -c fsync=on \
             -c shared_buffers=64MB -c log_min_messages=warning",
            self.port,
            self.dir.display()
        );
        let mut start = self.command("pg_ctl");
        start
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.join("server.log"))
            .args(["-w", "-t", "120", "-o", &options, "start"]);
        output(&mut start).map(drop)
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// A PostgreSQL program, run as the server's user when we are root.
    fn command(&self, program: &str) -> Command {
        match &self.user {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(self.bin.join(program));
                command
            }
            None => Command::new(self.bin.join(program)),
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let mut stop = self.command("pg_ctl");
        stop.arg("-D")
            .arg(self.data())
            .args(["-m", "fast", "-w", "stop"]);
        let _ = succeeds(&mut stop);
        let _ = fs::remove_dir_all(&self.dir);
        eprintln!("stopped the private PostgreSQL");
    }
}

fn is_root() -> bool {
    output(Command::new("id").arg("-u")).is_ok_and(|uid| uid.trim() == "0")
}

/// The user the server runs as when we are root: `postgres`.
fn server_user() -> Result<String> {
    if succeeds(Command::new("id").arg("postgres")) {
        return Ok("postgres".into());
    }
    run(Command::new("useradd").args(["--system", "--no-create-home", "postgres"]))?;
    Ok("postgres".into())
}

/// The newest installed PostgreSQL's `bin` directory, installing Debian's
/// `postgresql` package if there is none.
fn installed_bin() -> Result<PathBuf> {
    if let Some(bin) = newest_bin() {
        return Ok(bin);
    }
    step("installing PostgreSQL (Debian's postgresql package)");
    // The package would create and start a cluster of its own; we want
    // only the programs.
    let conf = Path::new("/etc/postgresql-common/createcluster.conf");
    if !conf.exists() {
        fs::create_dir_all("/etc/postgresql-common")?;
        fs::write(conf, "create_main_cluster = false\n")?;
    }
    let apt = |args: &[&str]| {
        let mut command = if is_root() {
            Command::new("apt-get")
        } else {
            let mut sudo = Command::new("sudo");
            sudo.arg("apt-get");
            sudo
        };
        command.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        run(&mut command)
    };
    apt(&["update", "-qq"])?;
    apt(&["install", "-y", "-qq", "postgresql"])?;
    newest_bin()
        .ok_or_else(|| "PostgreSQL was installed but no /usr/lib/postgresql/*/bin/initdb".into())
}

fn newest_bin() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
