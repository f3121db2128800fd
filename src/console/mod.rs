//! Console accounts: users (agents and supervisors) with Argon2id password hashes, their
//! server-side sessions, the login rate limit, and who may see which ticket.
//!
//! A session cookie carries a random token; the store keeps only its SHA-256, with the
//! session's CSRF token and its times. A session ends on logout, after `idle_timeout`
//! without a request, after `session_lifetime` whatever happens, and at once when its user
//! is disabled (the sessions are deleted, and a lookup also requires an enabled user).

pub mod compliance;
pub mod dashboard;
pub mod feed;
pub mod reply_stats;
pub mod store;
pub mod suggest;

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, OnceLock};

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::taxonomy;
use crate::tickets::Ticket;

pub use store::{SessionRow, UserRow};

/// What a console user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Works their own tickets and their groups' queue.
    Agent,
    /// Sees and acts on everything.
    Supervisor,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Supervisor => "supervisor",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "agent" => Some(Role::Agent),
            "supervisor" => Some(Role::Supervisor),
            _ => None,
        }
    }
}

/// A logged-in person, as the console's handlers see them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsoleUser {
    pub name: String,
    pub role: Role,
    /// The kf servicer whose tickets are this user's own.
    pub servicer_userid: Option<String>,
    /// Skill groups whose queue this user works.
    pub groups: Vec<String>,
}

impl ConsoleUser {
    pub fn is_supervisor(&self) -> bool {
        self.role == Role::Supervisor
    }

    /// From a stored row; an unknown role is read as the lesser one.
    pub fn from_parts(name: &str, role: &str, servicer: Option<&str>, groups: &str) -> Self {
        ConsoleUser {
            name: name.to_string(),
            role: Role::parse(role).unwrap_or(Role::Agent),
            servicer_userid: servicer.map(str::to_string),
            groups: serde_json::from_str(groups).unwrap_or_default(),
        }
    }
}

/// Whether `user` may see (and so act on) `ticket`: a supervisor every ticket; an agent the
/// tickets assigned to their servicer and the unassigned tickets of their skill groups.
pub fn may_see(user: &ConsoleUser, ticket: &Ticket) -> bool {
    match user.role {
        Role::Supervisor => true,
        Role::Agent => match (&ticket.assignee, &user.servicer_userid) {
            (Some(assignee), Some(me)) => assignee == me,
            (Some(_), None) => false,
            (None, _) => user.groups.contains(&ticket.grp),
        },
    }
}

// ---- users ----

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("a user name is 1 to 64 letters, digits, '.', '_' or '-', got {0:?}")]
    BadName(String),
    #[error("unknown skill group {0:?}; the groups are {1}")]
    BadGroup(String, String),
    #[error("a servicer id is 1 to 64 characters without spaces, got {0:?}")]
    BadServicer(String),
    #[error("an agent needs --servicer-id: their own tickets are the ones assigned to it")]
    AgentWithoutServicer,
    #[error("{0}")]
    BadPassword(&'static str),
    #[error("user {0:?} exists already")]
    Exists(String),
    #[error("no user {0:?}")]
    NotFound(String),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

pub const MIN_PASSWORD_CHARS: usize = 10;
pub const MAX_PASSWORD_BYTES: usize = 1024;

pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.chars().count())
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// The skill groups a user may be given (those of the taxonomy).
pub fn skill_groups() -> Vec<&'static str> {
    let mut groups: Vec<&'static str> = taxonomy::all().iter().map(|i| i.group).collect();
    groups.sort_unstable();
    groups.dedup();
    groups
}

/// A new user, checked: name, groups, servicer id and password.
pub struct NewUser {
    pub name: String,
    pub role: Role,
    pub servicer_userid: Option<String>,
    pub groups: Vec<String>,
    pub password: String,
}

impl NewUser {
    pub fn validate(&self) -> Result<(), UserError> {
        if !valid_name(&self.name) {
            return Err(UserError::BadName(self.name.clone()));
        }
        let known = skill_groups();
        if let Some(g) = self.groups.iter().find(|g| !known.contains(&g.as_str())) {
            return Err(UserError::BadGroup(g.clone(), known.join(", ")));
        }
        match &self.servicer_userid {
            Some(s)
                if s.is_empty() || s.chars().count() > 64 || s.contains(char::is_whitespace) =>
            {
                return Err(UserError::BadServicer(s.clone()))
            }
            None if self.role == Role::Agent => return Err(UserError::AgentWithoutServicer),
            _ => {}
        }
        if self.password.chars().count() < MIN_PASSWORD_CHARS {
            return Err(UserError::BadPassword(
                "the password must be at least 10 characters",
            ));
        }
        if self.password.len() > MAX_PASSWORD_BYTES {
            return Err(UserError::BadPassword(
                "the password must be at most 1024 bytes",
            ));
        }
        Ok(())
    }
}

/// Add a user after checking everything; nothing is written on an error.
pub async fn add_user(
    store: &crate::store::Store,
    new: NewUser,
    now_ms: i64,
) -> Result<(), UserError> {
    new.validate()?;
    if store::user(store.pool(), &new.name).await?.is_some() {
        return Err(UserError::Exists(new.name));
    }
    let NewUser {
        name,
        role,
        servicer_userid,
        mut groups,
        password,
    } = new;
    let password_hash = hash_password(password).await?;
    groups.sort();
    groups.dedup();
    let row = UserRow {
        name: name.clone(),
        role: role.as_str().to_string(),
        servicer_userid,
        groups: serde_json::to_string(&groups).unwrap_or_else(|_| "[]".into()),
        password_hash,
        disabled_at: None,
        created_at: now_ms,
        updated_at: now_ms,
    };
    let mut conn = store.pool().acquire().await?;
    if store::insert_user(&mut conn, &row).await? {
        Ok(())
    } else {
        Err(UserError::Exists(name))
    }
}

/// Disable a user and end their sessions, in one transaction. False when they were
/// disabled already.
pub async fn disable_user(
    store: &crate::store::Store,
    name: &str,
    now_ms: i64,
) -> Result<bool, UserError> {
    let mut tx = store.pool().begin().await?;
    let Some(user) = store::user(&mut *tx, name).await? else {
        return Err(UserError::NotFound(name.to_string()));
    };
    let changed = store::disable_user(&mut tx, name, now_ms).await?;
    store::delete_sessions_of(&mut tx, &user.name).await?;
    tx.commit().await?;
    Ok(changed)
}

// ---- passwords ----

/// Hash a password (Argon2id, random salt) into a PHC string, off the async threads.
pub async fn hash_password(password: String) -> Result<String, UserError> {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| UserError::Hash(e.to_string()))
    })
    .await
    .map_err(|e| UserError::Hash(e.to_string()))?
}

/// A hash of no one's password, verified against when the user is unknown so that a wrong
/// name takes as long as a wrong password.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let secret = format!("{:032x}", rand::random::<u128>());
        Argon2::default()
            .hash_password(secret.as_bytes())
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

/// Check `password` against a stored PHC string, or against a dummy hash when there is none
/// (the answer is then always false). Runs off the async threads.
pub async fn verify_password(stored: Option<String>, password: String) -> bool {
    tokio::task::spawn_blocking(move || {
        let known = stored.is_some();
        let phc = stored.unwrap_or_else(|| dummy_hash().to_string());
        let ok = match PasswordHash::new(&phc) {
            Ok(parsed) => Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok(),
            Err(_) => false,
        };
        known && ok
    })
    .await
    .unwrap_or(false)
}

// ---- session tokens ----

/// A fresh random token (256 bits, hex).
pub fn new_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// What the store keeps of a session token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

// ---- login rate limit ----

/// Failed logins per key (an account or a client address) within a sliding window, in
/// this process.
pub struct LoginLimiter {
    window_ms: i64,
    failures: Mutex<HashMap<String, VecDeque<i64>>>,
}

impl LoginLimiter {
    pub fn new(window_ms: i64) -> Self {
        LoginLimiter {
            window_ms,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// When `key` has `max` failures or more within the window: the seconds until the
    /// oldest of them leaves it.
    pub fn blocked_for(&self, key: &str, max: u32, now_ms: i64) -> Option<i64> {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let q = map.get_mut(key)?;
        while q.front().is_some_and(|t| *t <= now_ms - self.window_ms) {
            q.pop_front();
        }
        if q.is_empty() {
            map.remove(key);
            return None;
        }
        if q.len() >= max as usize {
            let oldest = q.front().copied().unwrap_or(now_ms);
            let ms = oldest + self.window_ms - now_ms;
            Some((ms + 999).div_euclid(1000).max(1))
        } else {
            None
        }
    }

    pub fn record_failure(&self, key: &str, now_ms: i64) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        // Bound the memory an attacker can make us use: forget stale keys when large.
        if map.len() > 100_000 {
            let cutoff = now_ms - self.window_ms;
            map.retain(|_, q| q.back().is_some_and(|t| *t > cutoff));
        }
        let q = map.entry(key.to_string()).or_default();
        q.push_back(now_ms);
        if q.len() > 1000 {
            q.pop_front();
        }
    }

    pub fn clear(&self, key: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(servicer: &str, groups: &[&str]) -> ConsoleUser {
        ConsoleUser {
            name: "a".into(),
            role: Role::Agent,
            servicer_userid: Some(servicer.into()),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    #[test]
    fn the_limiter_blocks_after_max_failures_until_the_oldest_leaves_the_window() {
        let l = LoginLimiter::new(15 * 60_000);
        for i in 0..4 {
            l.record_failure("acct:li", i * 1000);
        }
        assert_eq!(l.blocked_for("acct:li", 5, 4000), None);
        l.record_failure("acct:li", 4000);
        assert_eq!(l.blocked_for("acct:li", 5, 5000), Some(15 * 60 - 5));
        assert_eq!(l.blocked_for("acct:wang", 5, 5000), None);
        // The first failure leaves the window: four remain.
        assert_eq!(l.blocked_for("acct:li", 5, 15 * 60_000 + 1), None);
        l.clear("acct:li");
        assert_eq!(l.blocked_for("acct:li", 1, 15 * 60_000 + 1), None);
    }

    #[test]
    fn names_and_new_users_are_checked() {
        assert!(valid_name("li.min_2"));
        assert!(valid_name("李敏"));
        for bad in ["", "li min", "li/min", "<b>", &"x".repeat(65)] {
            assert!(!valid_name(bad), "{bad:?}");
        }
        let new = |role, servicer: Option<&str>, groups: &[&str], pw: &str| NewUser {
            name: "li".into(),
            role,
            servicer_userid: servicer.map(str::to_string),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            password: pw.into(),
        };
        assert!(new(Role::Agent, Some("li"), &["service"], "long enough pw")
            .validate()
            .is_ok());
        assert!(new(Role::Supervisor, None, &[], "long enough pw")
            .validate()
            .is_ok());
        assert!(matches!(
            new(Role::Agent, None, &[], "long enough pw").validate(),
            Err(UserError::AgentWithoutServicer)
        ));
        assert!(matches!(
            new(Role::Agent, Some("li"), &["sales"], "long enough pw").validate(),
            Err(UserError::BadGroup(..))
        ));
        assert!(matches!(
            new(Role::Agent, Some("li"), &[], "short").validate(),
            Err(UserError::BadPassword(_))
        ));
    }

    #[test]
    fn agents_see_their_own_tickets_and_their_groups_queue() {
        let mut t = Ticket {
            id: "t1".into(),
            channel: "kf".into(),
            status: "queued".into(),
            intent: "refund".into(),
            grp: "aftersale".into(),
            priority: 2,
            tier: "normal".into(),
            ..Ticket::default()
        };
        let li = agent("li", &["aftersale"]);
        let wang = agent("wang", &["presale"]);
        assert!(may_see(&li, &t));
        assert!(!may_see(&wang, &t));
        t.assignee = Some("wang".into());
        assert!(
            !may_see(&li, &t),
            "another agent's ticket, even in li's group"
        );
        assert!(
            may_see(&wang, &t),
            "wang's own ticket, outside wang's groups"
        );
        let boss = ConsoleUser {
            role: Role::Supervisor,
            ..agent("boss", &[])
        };
        assert!(may_see(&boss, &t));
    }
}
