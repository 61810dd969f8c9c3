//! The sandbox's backing services: moto (installed into a venv and seeded), PostgreSQL with the
//! environments' databases and roles, the SMTP sink and Redis.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::{parse_state, process, Result, Sandbox, State, DATABASES, EDGE_KEYS, REQUIREMENTS};

impl Sandbox {
    /// The venv (created with the system's Python when absent) with every package of
    /// `xtask/sandbox/requirements.txt` at its pinned version: moto with its server, the SMTP sink, and the
    /// two JOSE libraries the JWT interoperability test verifies the service's tokens with.
    pub(super) fn ensure_python_packages(&self) -> Result<()> {
        process::ensure_venv(&self.venv(), &self.root.join(REQUIREMENTS), "sandbox")
    }

    pub(super) fn start_moto(&self, state: &mut State) -> Result<()> {
        let port = Self::fresh_port(state)?;
        let log = self.dir.join("moto.log");
        // moto's own server with three of its costs taken out (see the launcher): its answers are moto's.
        let pid = process::spawn_logged(
            Command::new(self.venv().join("bin/python"))
                .arg(self.root.join("xtask/sandbox/moto_server.py"))
                .args(["-H", "127.0.0.1", "-p", &port.to_string()]),
            &log,
        )?;
        process::wait_for_port(port, "moto", Duration::from_secs(60), &log)?;
        state.insert("moto_port".into(), port.to_string());
        // A fresh moto is empty: seed it and write the matching configuration. Both environments' `url`
        // is the proxy; the seed prints the staging rule and target groups the proxy follows.
        eprintln!("sandbox: seeding moto with the staging and production topology");
        self.set_role_passwords(state)?;
        let seeded = process::run(
            Command::new(self.venv().join("bin/python"))
                .env("SUMA_BIN", self.binary("suma"))
                .env(
                    "SANDBOX_TEMPLATE",
                    self.root.join("templates/ecs/auth-service.taskdef.yaml"),
                )
                .env("SANDBOX_SERVICE_URLS", Self::service_urls(state))
                .env(
                    "SANDBOX_PRODUCTION_URL",
                    format!("http://127.0.0.1:{}", state["edge_production_front_port"]),
                )
                .env(
                    "SANDBOX_STAGING_TEST_URL",
                    format!("http://127.0.0.1:{}", state["edge_staging_test_port"]),
                )
                .arg(self.root.join("xtask/sandbox/seed.py"))
                .arg(format!("http://127.0.0.1:{port}"))
                .arg(self.dir.join("suma.yaml"))
                .arg(format!("http://127.0.0.1:{}", state["edge_port"]))
                .arg(format!("http://127.0.0.1:{}", state["prometheus_port"])),
        )?;
        let printed: Vec<String> = ["staging", "production"]
            .iter()
            .flat_map(|env| EDGE_KEYS.map(|key| format!("{env}_{key}")))
            .collect();
        for key in &printed {
            state.remove(key);
        }
        state.extend(parse_state(&seeded));
        for key in &printed {
            if !state.contains_key(key) {
                return Err(format!("seed.py printed no `{key}`:\n{seeded}"));
            }
        }
        Self::started(state, "moto", pid);
        Ok(())
    }

    pub(super) fn start_postgres(&self, state: &mut State, bin: &Path) -> Result<()> {
        let data = self.dir.join("pg");
        let log = self.dir.join("pg.log");
        let as_root = process::is_root();
        // PostgreSQL refuses to run as root: run it as the `postgres` system user then.
        let wrap = |program: &str| {
            let mut cmd = if as_root {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(bin.join(program));
                c
            } else {
                Command::new(bin.join(program))
            };
            cmd.env_remove("PGDATA");
            cmd
        };
        if !data.join("PG_VERSION").exists() {
            let _ = std::fs::remove_dir_all(&data);
            std::fs::create_dir_all(&data).map_err(|e| e.to_string())?;
            std::fs::write(&log, "").map_err(|e| e.to_string())?;
            if as_root {
                process::run(
                    Command::new("chown")
                        .args(["-R", "postgres:postgres"])
                        .arg(&data)
                        .arg(&log),
                )?;
            }
            process::run(
                wrap("initdb")
                    .args([
                        "--auth=trust",
                        "--username=postgres",
                        "--encoding=UTF8",
                        "--no-sync",
                        "-D",
                    ])
                    .arg(&data),
            )?;
        }
        let port = Self::fresh_port(state)?;
        let options = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300",
            data.display()
        );
        process::run(
            wrap("pg_ctl")
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(&log)
                .args(["-o", &options, "-w", "-t", "60", "start"]),
        )?;
        let pid = std::fs::read_to_string(data.join("postmaster.pid"))
            .ok()
            .and_then(|t| t.lines().next().and_then(|l| l.trim().parse::<u32>().ok()))
            .ok_or("PostgreSQL started but wrote no postmaster.pid")?;
        state.insert("postgres_port".into(), port.to_string());
        Self::started(state, "postgres", pid);
        Ok(())
    }

    /// Client authentication: the sandbox's own superuser `postgres` (what the services, tests and suma's
    /// admin secrets use) is trusted on loopback and the socket; every other role must give its password
    /// (SCRAM) over TCP, so a rotated role password is really checked. Written and reloaded only when it
    /// differs, so an existing sandbox gets it at its next `up`.
    pub(super) fn ensure_pg_auth(&self, bin: &Path) -> Result<()> {
        const PG_HBA: &str = "\
# Written by `cargo xtask sandbox up`: `postgres` is trusted, other roles prove their password.
local   all             all                                     trust
host    all             postgres        127.0.0.1/32            trust
host    all             postgres        ::1/128                 trust
host    all             all             127.0.0.1/32            scram-sha-256
host    all             all             ::1/128                 scram-sha-256
local   replication     all                                     trust
host    replication     postgres        127.0.0.1/32            trust
host    replication     postgres        ::1/128                 trust
";
        let data = self.dir.join("pg");
        let path = data.join("pg_hba.conf");
        if std::fs::read_to_string(&path).is_ok_and(|t| t == PG_HBA) {
            return Ok(());
        }
        // Overwriting in place keeps the file's owner (`postgres` when the sandbox runs as root).
        std::fs::write(&path, PG_HBA).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        let mut reload = if process::is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(bin.join("pg_ctl"));
            c
        } else {
            Command::new(bin.join("pg_ctl"))
        };
        process::run(reload.env_remove("PGDATA").arg("-D").arg(&data).arg("reload")).map(drop)
    }

    /// An SMTP server on loopback that stores every message it receives in the Maildir `mail/`, where
    /// tests (and people) read the auth-service's verification, reset and notification emails.
    pub(super) fn start_smtp(&self, state: &mut State) -> Result<()> {
        let port = Self::fresh_port(state)?;
        let log = self.dir.join("smtp.log");
        let pid = process::spawn_logged(
            Command::new(self.venv().join("bin/python"))
                .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
                .args(["-c", "aiosmtpd.handlers.Mailbox"])
                .arg(self.dir.join("mail")),
            &log,
        )?;
        process::wait_for_port(port, "smtp", Duration::from_secs(20), &log)?;
        state.insert("smtp_port".into(), port.to_string());
        Self::started(state, "smtp", pid);
        Ok(())
    }

    pub(super) fn start_redis(&self, state: &mut State) -> Result<()> {
        self.spawn_redis(state, "redis", &[])
    }

    /// A replication group's Redis: `requirepass` is the group's AUTH token (the `default` user's
    /// password, as on ElastiCache), and an admin user the ECS agent's overlay applies token changes as.
    pub(super) fn start_group_redis(&self, state: &mut State, component: &str) -> Result<()> {
        let token = state[&format!("{component}_token")].clone();
        let admin = format!(">{}", state["redis_admin_password"]);
        let auth = [
            "--requirepass",
            &token,
            "--user",
            super::REDIS_ADMIN,
            "on",
            &admin,
            "~*",
            "&*",
            "+@all",
        ];
        self.spawn_redis(state, component, &auth)
    }

    /// A Redis server on a fresh loopback port, in memory only, as `component` (its log, its state keys).
    fn spawn_redis(&self, state: &mut State, component: &str, extra: &[&str]) -> Result<()> {
        let port = Self::fresh_port(state)?;
        let log = self.dir.join(format!("{component}.log"));
        let port_arg = port.to_string();
        let mut args = vec![
            "--port",
            &port_arg,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
        ];
        args.extend_from_slice(extra);
        let pid = process::spawn_logged(Command::new("redis-server").args(&args), &log)?;
        process::wait_for_port(port, component, Duration::from_secs(20), &log)?;
        state.insert(format!("{component}_port"), port.to_string());
        Self::started(state, component, pid);
        Ok(())
    }

    /// The environments' databases, `auth` (staging) and `auth_production`, each owned by the role its
    /// tasks log in as (`auth_staging`, `auth_production`), which must give its password: so a rotation of
    /// the `database-url` secret really changes what the tasks connect with. The password is set when moto
    /// is seeded ([`Self::set_role_passwords`]), the only time the secrets are written from the state.
    pub(super) fn ensure_databases(&self, state: &State, pg_bin: &Path) -> Result<()> {
        for (db, role) in DATABASES {
            let sql = format!(
                "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN CREATE ROLE {role} LOGIN; END IF; END $$"
            );
            self.psql(state, pg_bin, "postgres", &sql)?;
            // `createdb` fails when the database exists, which is what we want on a restart.
            let _ = process::run(Command::new(pg_bin.join("createdb")).args([
                "-h",
                "127.0.0.1",
                "-p",
                &state["postgres_port"],
                "-U",
                "postgres",
                "-O",
                role,
                db,
            ]));
            // A database from an older sandbox was created by `postgres`: hand it over.
            self.psql(
                state,
                pg_bin,
                "postgres",
                &format!("ALTER DATABASE {db} OWNER TO {role}"),
            )?;
            self.psql(
                state,
                pg_bin,
                db,
                &format!(
                    "GRANT ALL ON SCHEMA public TO {role}; GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}; GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {role}"
                ),
            )?;
        }
        Ok(())
    }

    /// Gives the tasks' roles the passwords the seeded `database-url` secrets hold.
    pub(super) fn set_role_passwords(&self, state: &State) -> Result<()> {
        let pg_bin = ensure_postgres()?;
        for (_, role) in DATABASES {
            let password = &state[&format!("{role}_password")];
            self.psql(
                state,
                &pg_bin,
                "postgres",
                &format!("ALTER ROLE {role} WITH LOGIN PASSWORD '{password}'"),
            )?;
        }
        Ok(())
    }

    /// `psql -c SQL` as the superuser (trusted on loopback) on database `db`.
    pub(super) fn psql(&self, state: &State, pg_bin: &Path, db: &str, sql: &str) -> Result<()> {
        let port = Self::port(state, "postgres_port").ok_or("no PostgreSQL port recorded")?;
        process::psql(pg_bin, port, "postgres", None, db, sql)
            .map(drop)
            .map_err(|e| format!("psql as `postgres` on `{db}` failed: {e}"))
    }
}

/// The directory of PostgreSQL's server binaries, installing the Debian package when absent.
pub fn ensure_postgres() -> Result<PathBuf> {
    let find = || {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join("bin"))
            .filter(|bin| bin.join("initdb").is_file())
            .collect();
        dirs.sort();
        dirs.pop()
    };
    if let Some(bin) = find() {
        return Ok(bin);
    }
    apt_install(&["postgresql"])?;
    find().ok_or_else(|| "postgresql was installed but no initdb was found under /usr/lib/postgresql".to_owned())
}

/// Installs `package` from Debian when `program` is not on the PATH.
pub(super) fn ensure_program(program: &str, package: &str) -> Result<()> {
    if process::which(program).is_some() {
        return Ok(());
    }
    apt_install(&[package])
}

fn apt_install(packages: &[&str]) -> Result<()> {
    if !process::is_root() {
        return Err(format!(
            "missing {}: install with `sudo apt-get install -y {}`",
            packages.join(", "),
            packages.join(" ")
        ));
    }
    eprintln!("sandbox: installing {} from Debian", packages.join(", "));
    process::run(Command::new("apt-get").args(["update", "-qq"]))?;
    process::run(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(packages),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `moto_server.py` changes how moto's serializer finds values and keeps connections open;
    /// `moto_server_check.py` compares twenty of suma's calls answered with and without the serializer
    /// change, then sends requests of each kind over one connection to the launcher's server (with the
    /// sandbox's venv, where moto is).
    #[test]
    fn the_moto_launcher_keeps_motos_answers_and_connections() {
        let root = crate::workspace_root();
        let python = Sandbox::new(root.clone()).venv().join("bin/python");
        if !python.is_file() {
            eprintln!(
                "skipped: no sandbox venv at {} (run `cargo xtask sandbox up`)",
                python.display()
            );
            return;
        }
        let out = Command::new(&python)
            .arg(root.join("xtask/sandbox/moto_server_check.py"))
            .output()
            .expect("the venv's python runs");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
        assert!(text.contains("20 calls, 0 difference(s)"), "{text}");
        assert!(text.contains("connections: 0 problem(s)"), "{text}");
    }
}
