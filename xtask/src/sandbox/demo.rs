//! `cargo xtask demo`: the main job end to end on the sandbox, with what it started said first.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{build_workspace, target_dir, Result, Sandbox, BUILD_BINARIES};

/// `cargo xtask demo`: the main job end to end on the sandbox, with readable output.
pub fn demo(root: PathBuf) -> Result<()> {
    let sandbox = Sandbox::new(root.clone());
    let vars = sandbox.up()?;
    // The same single build as `up`'s: nothing compiles again.
    if !build_workspace(&root, BUILD_BINARIES)? {
        return Err("the workspace does not build".to_owned());
    }
    let target = target_dir(&root);
    let suma = target.join("debug/suma");
    let steps: &[(&str, &[&str])] = &[
        ("Validate the configuration", &["config", "validate"]),
        ("Staging at a glance", &["status", "--env", "staging"]),
        ("Production at a glance", &["status", "--env", "production"]),
        (
            "Who holds the production lock",
            &["lock", "status", "--env", "production"],
        ),
        ("Recent production operations", &["ops", "list", "--env", "production"]),
    ];
    for (title, args) in steps {
        println!("\n=== {title}: suma {}", args.join(" "));
        let code = crate::terminal::run_fitting(
            Command::new(&suma)
                .args(*args)
                .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        )?;
        if code != Some(0) {
            return Err(format!("`suma {}` failed", args.join(" ")));
        }
    }
    auth_demo(&vars)?;
    canary_demo(&sandbox, &suma, &vars)?;
    let ops = crate::demo_ops::Demo {
        dir: &sandbox.dir,
        python: sandbox.venv().join("bin/python"),
        seed: root.join("xtask/sandbox/seed.py"),
        suma: &suma,
        vars: &vars,
    };
    crate::demo_ops::secrets_demo(&ops)?;
    crate::demo_ops::dr_demo(&ops)?;
    crate::demo_runbooks::runbook_demo(&ops)?;
    println!("\nThe sandbox is still running. Try it yourself:\n  . {}\n  suma status --env production\nStop it with `cargo xtask sandbox down`.", sandbox.dir.join("env.sh").display());
    Ok(())
}

/// Two canaries on staging: a healthy build (promoted) and one answering 5% errors (rolled back by the
/// analysis), then the events Datadog's stand-in received.
fn canary_demo(sandbox: &Sandbox, suma: &Path, vars: &[(String, String)]) -> Result<()> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // A faulty release is a faulty image: the agent runs a tag ending in `-errors` with 5% errors.
    let runs = [
        ("A healthy canary: promoted", format!("demo-{secs}"), 0),
        (
            "A canary answering 5% errors: rolled back",
            format!("demo-{secs}-errors"),
            1,
        ),
    ];
    let result = (|| {
        for (title, version, expected) in &runs {
            let image = format!("registry.example/auth-service:{version}");
            let args = ["deploy", "canary", "--env", "staging", "--image", &image, "--yes"];
            println!("\n=== {title}: suma {}", args.join(" "));
            let code = crate::terminal::run_fitting(
                Command::new(suma)
                    .args(args)
                    .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                    .env("SUMA_ACTOR", "demo"),
            )?;
            if code != Some(*expected) {
                return Err(format!(
                    "`suma {}` exited {code:?}, expected {expected}",
                    args.join(" ")
                ));
            }
        }
        Ok(())
    })();
    result?;
    println!("\n=== What Datadog was told (the sandbox's stand-in records events)");
    let events = std::fs::read_to_string(sandbox.dir.join("datadog-events.jsonl")).unwrap_or_default();
    for line in events
        .lines()
        .rev()
        .take(runs.len())
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
    {
        let title = crate::http::json_str(line, "title").unwrap_or(line);
        println!("  {title}");
    }
    Ok(())
}

/// Registration, login, refresh and `/me` against the sandbox's auth-service.
fn auth_demo(vars: &[(String, String)]) -> Result<()> {
    use crate::http::{json_str, request};
    let url = vars
        .iter()
        .find(|(k, _)| k == "AUTH_URL")
        .map(|(_, v)| v.as_str())
        .ok_or("AUTH_URL is not set")?;
    let port: u16 = url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or("AUTH_URL has no port")?;
    println!("\n=== auth-service at {url}: register, login, refresh, /me");
    // A fresh account and password each run; nothing secret is fixed in the repository.
    let nonce = std::fs::read("/proc/sys/kernel/random/uuid").map_err(|e| e.to_string())?;
    let nonce = String::from_utf8_lossy(&nonce).trim().replace('-', "");
    let email = format!("demo-{}@example.com", &nonce[..8]);
    let credentials = format!(
        r#"{{"email":"{email}","password":"sandbox {} battery staple"}}"#,
        &nonce[8..24]
    );
    let show = |what: &str, status: u16, detail: &str| println!("{what:<28} {status}  {detail}");

    let r = request(port, "POST", "/api/auth/register", Some(&credentials), None)?;
    show("POST /api/auth/register", r.status, &email);
    let r = request(port, "POST", "/api/auth/login", Some(&credentials), None)?;
    let access = json_str(&r.body, "access_token")
        .ok_or_else(|| format!("login failed: {} {}", r.status, r.body))?
        .to_owned();
    let refresh = json_str(&r.body, "refresh_token")
        .ok_or("login gave no refresh token")?
        .to_owned();
    show(
        "POST /api/auth/login",
        r.status,
        &format!("session {}", json_str(&r.body, "session_id").unwrap_or("?")),
    );
    let r = request(
        port,
        "POST",
        "/api/auth/refresh",
        Some(&format!(r#"{{"refresh_token":"{refresh}"}}"#)),
        None,
    )?;
    let rotated = json_str(&r.body, "refresh_token").is_some_and(|t| t != refresh);
    show(
        "POST /api/auth/refresh",
        r.status,
        if rotated {
            "refresh token rotated"
        } else {
            "NOT rotated"
        },
    );
    let r = request(port, "GET", "/api/auth/me", None, Some(&access))?;
    show("GET /api/auth/me", r.status, &r.body);
    let r = request(
        port,
        "POST",
        "/api/auth/refresh",
        Some(&format!(r#"{{"refresh_token":"{refresh}"}}"#)),
        None,
    )?;
    show(
        "reuse of the old refresh",
        r.status,
        "within the grace window: same successor; later: family revoked",
    );
    let r = request(port, "GET", "/version", None, None)?;
    show("GET /version", r.status, &r.body);
    if !rotated {
        return Err("the refresh token was not rotated".to_owned());
    }
    Ok(())
}
