//! Redis access: sessions, rate-limit counters and login lockout.
//!
//! Every check-and-update is a Lua script, so it is atomic across service instances: the lockout gate
//! counts an attempt *before* its password is verified, which is what keeps 50 parallel wrong attempts from
//! getting more than `MAX_LOGIN_ATTEMPTS` verifications. The session check, on every authenticated request,
//! reads with plain commands first and runs its script only when it has something to write
//! ([`super::session_read`]). Every key starts with the configured prefix.

use std::sync::LazyLock;
use std::time::Duration;

use chrono::{DateTime, TimeZone as _, Utc};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands as _, Script};
use uuid::Uuid;

use super::session_read::{self, SessionRead, LAST_SEEN_RESOLUTION_MS};

/// Admits a login attempt unless the account has used up its attempts. KEYS: counter. ARGV: max, window.
const GATE_ACQUIRE: &str = r"
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n >= tonumber(ARGV[1]) then
  local ttl = redis.call('TTL', KEYS[1])
  if ttl < 0 then
    redis.call('EXPIRE', KEYS[1], ARGV[2])
    ttl = tonumber(ARGV[2])
  end
  return {0, ttl}
end
n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return {1, n}
";

/// Records a failed attempt's outcome: locks when the count is used up. KEYS: counter, lock flag.
/// ARGV: max, lockout seconds. Returns 1 for the one failure that locked the account.
const GATE_FAIL: &str = r"
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n >= tonumber(ARGV[1]) then
  if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[2]) then
    redis.call('EXPIRE', KEYS[1], ARGV[2])
    return 1
  end
end
return 0
";

/// The generic cell rate algorithm (GCRA): `limit` requests per `window`, as a burst of at most `limit`
/// and then one every `window / limit`. Unlike a fixed window it never lets twice the limit through
/// around a window's edge. The key holds the theoretical arrival time (TAT) of the next request, in
/// milliseconds of Redis's own clock (the same for every instance). KEYS: the key. ARGV: limit, window
/// seconds. Returns 0 when allowed, else whole seconds to wait.
const RATE_LIMIT: &str = r"
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2]) * 1000
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = window / limit
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local next_tat = tat + interval
local allowed_at = next_tat - window
if allowed_at > now then
  return math.max(math.ceil((allowed_at - now) / 1000), 1)
end
redis.call('SET', KEYS[1], next_tat, 'PX', math.ceil(next_tat - now))
return 0
";
/// Checks a session's timeouts and slides its idle timeout. KEYS: session. ARGV: now ms, idle ms, absolute
/// ms, expiry slack ms, `last_seen` resolution ms. Returns {code, user_id}: 1 alive, 0 missing, 2 idle
/// timeout, 3 absolute timeout. `last_seen` (and the expiry with it) is written at most once per resolution
/// (see [`LAST_SEEN_RESOLUTION_MS`]). Runs only when a plain read of the session found something to write
/// (see [`super::session_read`]); the cached profile comes from that read.
const SESSION_TOUCH: &str = r"
local v = redis.call('HMGET', KEYS[1], 'user_id', 'created_at', 'last_seen')
if not v[1] then return {0, ''} end
local now = tonumber(ARGV[1])
local created = tonumber(v[2])
local last = tonumber(v[3])
if now - created > tonumber(ARGV[3]) then
  redis.call('DEL', KEYS[1])
  return {3, v[1]}
end
if now - last > tonumber(ARGV[2]) then
  redis.call('DEL', KEYS[1])
  return {2, v[1]}
end
if now - last >= tonumber(ARGV[5]) then
  redis.call('HSET', KEYS[1], 'last_seen', ARGV[1])
  local remaining = math.min(tonumber(ARGV[2]), tonumber(ARGV[3]) - (now - created))
  redis.call('PEXPIRE', KEYS[1], math.max(remaining, 0) + tonumber(ARGV[4]))
end
return {1, v[1]}
";

/// Counts an attempt on a second-factor challenge. KEYS: challenge. ARGV: max attempts. Returns {} when
/// missing or used up (then deleted), else {user_id, otp_hash or ''}.
const CHALLENGE_ATTEMPT: &str = r"
local v = redis.call('HMGET', KEYS[1], 'user_id', 'otp')
if not v[1] then return {} end
local n = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
if n > tonumber(ARGV[1]) then
  redis.call('DEL', KEYS[1])
  return {}
end
return {v[1], v[2] or ''}
";

// The scripts, with their SHA-1 computed once (`EVALSHA`, falling back to `EVAL` after a Redis restart).
static GATE_ACQUIRE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(GATE_ACQUIRE));
static GATE_FAIL_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(GATE_FAIL));
static RATE_LIMIT_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RATE_LIMIT));
static SESSION_TOUCH_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(SESSION_TOUCH));
static CHALLENGE_ATTEMPT_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(CHALLENGE_ATTEMPT));

/// How long a cached profile (`GET /api/auth/me`) lives. Every write to a profile field deletes it, so
/// this only bounds how long a cache fill that raced with such a write can serve the older value.
pub const PROFILE_TTL: Duration = Duration::from_secs(30);

/// How long a session key outlives its deadline in Redis. Validity is decided by the timestamps in the
/// script, never by the key's TTL; the slack lets a request that arrives after the deadline see the
/// session as timed out (and audit it) rather than missing, and the TTL still cleans up abandoned ones.
const EXPIRY_SLACK: Duration = Duration::from_secs(300);

/// Keys asked of Redis per `SCAN` step when ending every session.
const SCAN_BATCH: usize = 500;

/// Escapes the glob characters of a key prefix for `SCAN MATCH`.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Whether a login attempt may proceed to password verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Verify the password.
    Admitted,
    /// The account is locked for this many seconds.
    Locked { retry_after: u64 },
}

/// A session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: Uuid,
    pub user_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// The outcome of checking a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionState {
    /// Alive (and its idle timeout slid forward), owned by this user; with the cached profile of the user
    /// asked about, when there is one (the caller checks that the owner is that user).
    Alive { user_id: Uuid, profile: Option<String> },
    /// Never existed, ended or evicted.
    Missing,
    /// Ended now by the idle timeout.
    IdleTimeout,
    /// Ended now by the absolute timeout.
    AbsoluteTimeout,
}

/// Session timeouts.
#[derive(Debug, Clone, Copy)]
pub struct SessionTimeouts {
    pub idle: Duration,
    pub absolute: Duration,
}

/// The Redis store.
#[derive(Clone)]
pub struct Cache {
    conn: ConnectionManager,
    prefix: String,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_ms(v: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(v).single().unwrap_or_default()
}

impl Cache {
    /// A store that connects lazily, so the service starts (and reports not ready) while Redis is down.
    pub fn connect_lazy(url: &str, prefix: &str) -> redis::RedisResult<Self> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = client.get_connection_manager_lazy(config)?;
        Ok(Self {
            conn,
            prefix: prefix.to_owned(),
        })
    }

    fn key(&self, parts: &[&str]) -> String {
        let mut k = self.prefix.clone();
        k.push_str(&parts.join(":"));
        k
    }

    /// `PING`.
    pub async fn ping(&self) -> redis::RedisResult<()> {
        let mut c = self.conn.clone();
        let pong: String = redis::cmd("PING").query_async(&mut c).await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err((redis::ErrorKind::Client, "unexpected PING reply").into())
        }
    }

    /// Counts a hit on a fixed-window limit; `Some(seconds)` when over the limit. A limit of 0 disables.
    pub async fn rate_limit(&self, scope: &str, id: &str, limit: u32, window: u64) -> redis::RedisResult<Option<u64>> {
        if limit == 0 {
            return Ok(None);
        }
        let mut c = self.conn.clone();
        let wait: i64 = RATE_LIMIT_SCRIPT
            .key(self.key(&["rl", scope, id]))
            .arg(limit)
            .arg(window)
            .invoke_async(&mut c)
            .await?;
        Ok((wait > 0).then_some(wait as u64))
    }

    /// Admits a login attempt for an account, counting it before the password is checked.
    pub async fn login_gate(&self, account: &str, max: u32, lockout: u64) -> redis::RedisResult<Gate> {
        let mut c = self.conn.clone();
        let (admitted, value): (i64, i64) = GATE_ACQUIRE_SCRIPT
            .key(self.key(&["login_fail", account]))
            .arg(max)
            .arg(lockout)
            .invoke_async(&mut c)
            .await?;
        Ok(if admitted == 1 {
            Gate::Admitted
        } else {
            Gate::Locked {
                retry_after: value.max(1) as u64,
            }
        })
    }

    /// Records that an admitted attempt failed; true for the failure that locked the account.
    pub async fn login_failed(&self, account: &str, max: u32, lockout: u64) -> redis::RedisResult<bool> {
        let mut c = self.conn.clone();
        let locked: i64 = GATE_FAIL_SCRIPT
            .key(self.key(&["login_fail", account]))
            .key(self.key(&["login_lock", account]))
            .arg(max)
            .arg(lockout)
            .invoke_async(&mut c)
            .await?;
        Ok(locked == 1)
    }

    /// Whether `account`'s counter already reached `max`, without counting an attempt: the seconds until
    /// it opens again if so.
    pub async fn gate_closed(&self, account: &str, max: u32) -> redis::RedisResult<Option<u64>> {
        let mut c = self.conn.clone();
        let key = self.key(&["login_fail", account]);
        let (count, ttl): (Option<i64>, i64) = redis::pipe().get(&key).ttl(&key).query_async(&mut c).await?;
        Ok((count.unwrap_or(0) >= i64::from(max)).then(|| ttl.max(1) as u64))
    }

    /// Clears the failure count after a successful login.
    pub async fn login_succeeded(&self, account: &str) -> redis::RedisResult<()> {
        let mut c = self.conn.clone();
        let _: i64 = c
            .del(&[self.key(&["login_fail", account]), self.key(&["login_lock", account])])
            .await?;
        Ok(())
    }

    /// Stores a new session.
    pub async fn create_session(&self, s: &Session, timeouts: SessionTimeouts) -> redis::RedisResult<()> {
        let key = self.key(&["session", &s.id.to_string()]);
        let index = self.key(&["user_sessions", &s.user_id.to_string()]);
        let ttl_ms = (timeouts.idle.min(timeouts.absolute) + EXPIRY_SLACK).as_millis() as i64;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hset_multiple(
                &key,
                &[
                    ("user_id", s.user_id.to_string()),
                    ("created_at", ms(s.created_at).to_string()),
                    ("last_seen", ms(s.last_seen_at).to_string()),
                    ("ip", s.ip.clone().unwrap_or_default()),
                    ("user_agent", s.user_agent.clone().unwrap_or_default()),
                ],
            )
            .ignore()
            .pexpire(&key, ttl_ms)
            .ignore()
            .sadd(&index, s.id.to_string())
            .ignore()
            .expire(&index, timeouts.absolute.as_secs() as i64)
            .ignore();
        let mut c = self.conn.clone();
        pipe.query_async::<()>(&mut c).await
    }

    /// Checks a session's timeouts at `now` and, when alive, slides its idle timeout; reads `profile_of`'s
    /// cached profile in the same round trip. Reads first, as plain commands: when the session is missing,
    /// or alive and seen within [`LAST_SEEN_RESOLUTION_MS`], that read is the answer; otherwise the session
    /// script decides and writes, in a second round trip (at most once per resolution per session), and
    /// the profile is the one read.
    pub async fn touch_session(
        &self,
        id: Uuid,
        profile_of: Uuid,
        now: DateTime<Utc>,
        timeouts: SessionTimeouts,
    ) -> redis::RedisResult<SessionState> {
        let mut c = self.conn.clone();
        let session_key = self.key(&["session", &id.to_string()]);
        let profile_key = self.key(&["profile", &profile_of.to_string()]);
        let (fields, profile): (Vec<Option<String>>, Option<String>) = redis::pipe()
            .cmd("HMGET")
            .arg(&session_key)
            .arg(&["user_id", "created_at", "last_seen"])
            .cmd("GET")
            .arg(&profile_key)
            .query_async(&mut c)
            .await?;
        match session_read::judge(&fields, ms(now), timeouts) {
            SessionRead::Missing => return Ok(SessionState::Missing),
            SessionRead::Alive(user_id) => return Ok(SessionState::Alive { user_id, profile }),
            SessionRead::RunScript => {}
        }
        let (code, user): (i64, String) = SESSION_TOUCH_SCRIPT
            .key(session_key)
            .arg(ms(now))
            .arg(timeouts.idle.as_millis() as i64)
            .arg(timeouts.absolute.as_millis() as i64)
            .arg(EXPIRY_SLACK.as_millis() as i64)
            .arg(LAST_SEEN_RESOLUTION_MS)
            .invoke_async(&mut c)
            .await?;
        let user_id = Uuid::parse_str(&user).ok();
        if code != 1 {
            if let Some(user_id) = user_id {
                let _: i64 = c
                    .srem(self.key(&["user_sessions", &user_id.to_string()]), id.to_string())
                    .await?;
            }
        }
        Ok(match (code, user_id) {
            (1, Some(user_id)) => SessionState::Alive { user_id, profile },
            (2, _) => SessionState::IdleTimeout,
            (3, _) => SessionState::AbsoluteTimeout,
            _ => SessionState::Missing,
        })
    }

    /// A user's live sessions at `now`, oldest first; dead index entries are pruned.
    pub async fn list_sessions(
        &self,
        user_id: Uuid,
        now: DateTime<Utc>,
        timeouts: SessionTimeouts,
    ) -> redis::RedisResult<Vec<Session>> {
        let mut c = self.conn.clone();
        let index = self.key(&["user_sessions", &user_id.to_string()]);
        let ids: Vec<String> = c.smembers(&index).await?;
        let mut sessions = Vec::new();
        let mut dead = Vec::new();
        for id in ids {
            let Ok(sid) = Uuid::parse_str(&id) else {
                dead.push(id);
                continue;
            };
            let fields: Vec<Option<String>> = redis::cmd("HMGET")
                .arg(self.key(&["session", &id]))
                .arg(&["user_id", "created_at", "last_seen", "ip", "user_agent"])
                .query_async(&mut c)
                .await?;
            let get = |i: usize| fields.get(i).cloned().flatten();
            let owner = get(0).and_then(|u| Uuid::parse_str(&u).ok());
            let created = get(1).and_then(|v| v.parse::<i64>().ok());
            let last = get(2).and_then(|v| v.parse::<i64>().ok());
            let (Some(owner), Some(created), Some(last)) = (owner, created, last) else {
                dead.push(id);
                continue;
            };
            let now_ms = ms(now);
            let expired = now_ms - created > timeouts.absolute.as_millis() as i64
                || now_ms - last > timeouts.idle.as_millis() as i64;
            if owner != user_id || expired {
                dead.push(id);
                continue;
            }
            sessions.push(Session {
                id: sid,
                user_id,
                created_at: from_ms(created),
                last_seen_at: from_ms(last),
                ip: get(3).filter(|s| !s.is_empty()),
                user_agent: get(4).filter(|s| !s.is_empty()),
            });
        }
        if !dead.is_empty() {
            let _: i64 = c.srem(&index, &dead).await?;
        }
        sessions.sort_by_key(|s| s.created_at);
        Ok(sessions)
    }

    /// The owner of a session, if it exists.
    pub async fn session_owner(&self, id: Uuid) -> redis::RedisResult<Option<Uuid>> {
        let mut c = self.conn.clone();
        let owner: Option<String> = c.hget(self.key(&["session", &id.to_string()]), "user_id").await?;
        Ok(owner.and_then(|o| Uuid::parse_str(&o).ok()))
    }

    /// Ends every session of a user; returns how many existed.
    pub async fn delete_all_sessions(&self, user_id: Uuid) -> redis::RedisResult<u64> {
        let mut c = self.conn.clone();
        let index = self.key(&["user_sessions", &user_id.to_string()]);
        let ids: Vec<String> = c.smembers(&index).await?;
        let mut keys: Vec<String> = ids.iter().map(|id| self.key(&["session", id])).collect();
        keys.push(index);
        let deleted: u64 = c.del(&keys).await?;
        Ok(deleted.saturating_sub(1))
    }

    /// Ends every session of every user: `SCAN` over this prefix's session keys and `UNLINK` in batches
    /// (never `KEYS`, which blocks Redis for the whole key space), then the per-user session indexes the
    /// same way. Returns the ids of the sessions ended. A session created while the scan runs may
    /// survive; the admin API documents that a second call catches it.
    pub async fn delete_every_session(&self) -> redis::RedisResult<Vec<Uuid>> {
        let mut ended = Vec::new();
        let prefix = glob_escape(&self.prefix);
        let session_prefix = self.key(&["session", ""]);
        for pattern in [format!("{prefix}session:*"), format!("{prefix}user_sessions:*")] {
            let mut c = self.conn.clone();
            let mut cursor: u64 = 0;
            loop {
                let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(SCAN_BATCH)
                    .query_async(&mut c)
                    .await?;
                if !keys.is_empty() {
                    let removed: Vec<i64> = {
                        let mut pipe = redis::pipe();
                        for key in &keys {
                            pipe.cmd("UNLINK").arg(key);
                        }
                        pipe.query_async(&mut c).await?
                    };
                    for (key, removed) in keys.iter().zip(removed) {
                        // Only keys this call removed count, so two concurrent calls never count one
                        // session twice.
                        if removed == 1 {
                            if let Some(id) = key
                                .strip_prefix(&session_prefix)
                                .and_then(|id| Uuid::parse_str(id).ok())
                            {
                                ended.push(id);
                            }
                        }
                    }
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(ended)
    }

    /// Caches a user's profile for [`PROFILE_TTL`].
    pub async fn cache_profile(&self, user_id: Uuid, json: &str) -> redis::RedisResult<()> {
        let mut c = self.conn.clone();
        c.set_ex(
            self.key(&["profile", &user_id.to_string()]),
            json,
            PROFILE_TTL.as_secs(),
        )
        .await
    }

    /// Drops a user's cached profile; called after every write to the user's row.
    pub async fn forget_profile(&self, user_id: Uuid) -> redis::RedisResult<()> {
        let mut c = self.conn.clone();
        let _: i64 = c.del(self.key(&["profile", &user_id.to_string()])).await?;
        Ok(())
    }

    /// Stores a second-factor challenge for a login that passed its password check.
    pub async fn create_challenge(&self, id: Uuid, user_id: Uuid, ttl: Duration) -> redis::RedisResult<()> {
        let key = self.key(&["challenge", &id.to_string()]);
        let mut c = self.conn.clone();
        redis::pipe()
            .atomic()
            .hset_multiple(&key, &[("user_id", user_id.to_string()), ("attempts", "0".to_owned())])
            .ignore()
            .pexpire(&key, ttl.as_millis() as i64)
            .ignore()
            .query_async::<()>(&mut c)
            .await
    }

    /// Counts an attempt on a challenge: `None` when it is unknown, expired or out of attempts (then it
    /// is gone), else its user and the hash of the code sent by email or SMS, if any.
    pub async fn challenge_attempt(&self, id: Uuid, max: u32) -> redis::RedisResult<Option<(Uuid, Option<String>)>> {
        let mut c = self.conn.clone();
        let v: Vec<String> = CHALLENGE_ATTEMPT_SCRIPT
            .key(self.key(&["challenge", &id.to_string()]))
            .arg(max)
            .invoke_async(&mut c)
            .await?;
        Ok(match v.as_slice() {
            [user, otp] => Uuid::parse_str(user)
                .ok()
                .map(|u| (u, Some(otp.clone()).filter(|o| !o.is_empty()))),
            _ => None,
        })
    }

    /// The user of a live challenge, without counting an attempt.
    pub async fn challenge_user(&self, id: Uuid) -> redis::RedisResult<Option<Uuid>> {
        let mut c = self.conn.clone();
        let user: Option<String> = c.hget(self.key(&["challenge", &id.to_string()]), "user_id").await?;
        Ok(user.and_then(|u| Uuid::parse_str(&u).ok()))
    }

    /// Binds a code sent by email or SMS to a live challenge (replacing an earlier one); false when the
    /// challenge is gone.
    pub async fn set_challenge_code(&self, id: Uuid, code_hash: &str) -> redis::RedisResult<bool> {
        let key = self.key(&["challenge", &id.to_string()]);
        let mut c = self.conn.clone();
        // HSETXX-like: only while the challenge exists.
        let set: i64 = redis::Script::new(
            "if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'otp', ARGV[1]) return 1 end return 0",
        )
        .key(&key)
        .arg(code_hash)
        .invoke_async(&mut c)
        .await?;
        Ok(set == 1)
    }

    /// Ends a challenge; true for exactly one caller, so a challenge completes at most once.
    pub async fn finish_challenge(&self, id: Uuid) -> redis::RedisResult<bool> {
        let mut c = self.conn.clone();
        let deleted: i64 = c.del(self.key(&["challenge", &id.to_string()])).await?;
        Ok(deleted == 1)
    }

    /// Ends a session; returns whether it existed.
    pub async fn delete_session(&self, id: Uuid, user_id: Uuid) -> redis::RedisResult<bool> {
        let mut c = self.conn.clone();
        let (deleted, _): (i64, i64) = redis::pipe()
            .atomic()
            .del(self.key(&["session", &id.to_string()]))
            .srem(self.key(&["user_sessions", &user_id.to_string()]), id.to_string())
            .query_async(&mut c)
            .await?;
        Ok(deleted == 1)
    }
}
