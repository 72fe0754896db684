//! Who is asking: local accounts (argon2 password hashes), the signed identity header of
//! a trusted identity provider, sessions behind an `HttpOnly; Secure; SameSite=Strict`
//! cookie, and the CSRF token every state-changing request must carry.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::ServeError;
use super::config::{IdentityProvider, Role, ServeSettings, User};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "onboard_session";
/// The cookie carrying the sign-in form's CSRF token before there is a session.
pub const LOGIN_CSRF_COOKIE: &str = "onboard_login_csrf";

/// A signed-in user as the handlers see them.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user: String,
    pub name: String,
    pub role: Role,
    /// Practices a clinician is scoped to (empty for other roles).
    pub practices: Vec<String>,
    /// The CSRF token this user's forms carry.
    pub csrf: String,
    /// Signed in through the identity provider (no session cookie).
    pub via_identity_provider: bool,
}

impl Principal {
    fn of(u: &User, csrf: String, via_identity_provider: bool) -> Principal {
        Principal {
            user: u.id.clone(),
            name: u.name.clone().unwrap_or_else(|| u.id.clone()),
            role: u.role,
            practices: u.practices.clone(),
            csrf,
            via_identity_provider,
        }
    }
}

/// Random bytes as hex (session ids, CSRF tokens, keys).
pub fn random_hex(bytes: usize) -> Result<String, ServeError> {
    let mut b = vec![0u8; bytes];
    getrandom::fill(&mut b).map_err(|e| ServeError::Setup(format!("no randomness: {e}")))?;
    Ok(hex::encode(b))
}

/// An argon2id hash (PHC string, default parameters, random salt) of a password.
pub fn hash_password(password: &str) -> Result<String, ServeError> {
    use argon2::PasswordHasher;
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| ServeError::Setup(format!("no randomness: {e}")))?;
    let salt = argon2::password_hash::SaltString::encode_b64(&salt)
        .map_err(|e| ServeError::Setup(e.to_string()))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ServeError::Setup(e.to_string()))
}

/// Whether `password` matches the PHC hash (parameters from the hash).
pub fn verify_password(hash: &str, password: &str) -> bool {
    use argon2::PasswordVerifier;
    argon2::PasswordHash::new(hash).is_ok_and(|h| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// An identity header value as the identity provider writes it.
pub fn sign_identity(secret: &[u8], user: &str, issued: u64) -> String {
    format!(
        "{user}:{issued}:{}",
        hex::encode(mac(secret, &format!("{user}:{issued}")))
    )
}

fn mac(key: &[u8], text: &str) -> Vec<u8> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(text.as_bytes());
    m.finalize().into_bytes().to_vec()
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Why a request is refused before any handler runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// An identity header arrived but no identity provider is trusted.
    UntrustedHeader,
    /// The header's signature, format or age is wrong, or its user is unknown.
    BadHeader,
}

/// Users, the identity provider's secret, the sessions.
pub struct Authenticator {
    users: HashMap<String, User>,
    idp: Option<(IdentityProvider, Vec<u8>)>,
    /// Key of the CSRF tokens of identity-provider users (random per process).
    csrf_key: Vec<u8>,
    sessions: Mutex<HashMap<String, Session>>,
    session_length: Duration,
    /// The header name checked for an identity even when none is trusted.
    header: String,
    /// A hash of a random password, verified against for unknown users.
    dummy_hash: String,
}

struct Session {
    user: String,
    csrf: String,
    expires: Instant,
}

impl Authenticator {
    /// From the `serve:` section; the identity provider's secret is read from its
    /// environment variable now (an error naming the setting when it is unset).
    pub fn new(s: &ServeSettings) -> Result<Authenticator, ServeError> {
        let idp = match &s.identity_provider {
            Some(i) => {
                let secret = std::env::var(&i.secret_env).map_err(|_| {
                    ServeError::Setup(format!(
                        "serve.identity_provider.secret_env: environment variable `{}` is not set",
                        i.secret_env
                    ))
                })?;
                if secret.len() < 16 {
                    return Err(ServeError::Setup(format!(
                        "serve.identity_provider.secret_env: the secret in `{}` is shorter than 16 bytes",
                        i.secret_env
                    )));
                }
                Some((i.clone(), secret.into_bytes()))
            }
            None => None,
        };
        let header = s
            .identity_provider
            .as_ref()
            .map(|i| i.header.to_ascii_lowercase())
            .unwrap_or_else(|| "x-onboard-identity".into());
        Ok(Authenticator {
            users: s.users.iter().map(|u| (u.id.clone(), u.clone())).collect(),
            idp,
            csrf_key: hex::decode(random_hex(32)?).unwrap_or_default(),
            sessions: Mutex::new(HashMap::new()),
            session_length: Duration::from_secs(u64::from(s.session_minutes) * 60),
            header,
            dummy_hash: hash_password(&random_hex(16)?)?,
        })
    }

    pub fn identity_header(&self) -> &str {
        &self.header
    }

    /// The user of a valid identity header value.
    pub fn from_identity_header(&self, value: Option<&str>) -> Result<Option<Principal>, Refused> {
        let Some(value) = value else { return Ok(None) };
        let Some((idp, secret)) = &self.idp else {
            return Err(Refused::UntrustedHeader);
        };
        let mut parts = value.trim().splitn(3, ':');
        let (Some(user), Some(issued), Some(sig)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(Refused::BadHeader);
        };
        let issued: u64 = issued.parse().map_err(|_| Refused::BadHeader)?;
        let sig = hex::decode(sig).map_err(|_| Refused::BadHeader)?;
        let mut m =
            <Hmac<Sha256> as Mac>::new_from_slice(secret).map_err(|_| Refused::BadHeader)?;
        m.update(format!("{user}:{issued}").as_bytes());
        m.verify_slice(&sig).map_err(|_| Refused::BadHeader)?;
        if now_unix().abs_diff(issued) > idp.max_age_seconds {
            return Err(Refused::BadHeader);
        }
        let u = self.users.get(user).ok_or(Refused::BadHeader)?;
        let csrf = hex::encode(mac(&self.csrf_key, &format!("csrf:{user}")));
        Ok(Some(Principal::of(u, csrf, true)))
    }

    /// A local account's sign-in: a new session id, or None.
    pub fn sign_in(&self, user: &str, password: &str) -> Result<Option<String>, ServeError> {
        let Some(u) = self.users.get(user) else {
            // Same work for unknown users, so timing does not tell who exists.
            let _ = verify_password(&self.dummy_hash, password);
            return Ok(None);
        };
        let ok = u
            .password_hash
            .as_deref()
            .is_some_and(|h| verify_password(h, password));
        if !ok {
            return Ok(None);
        }
        let id = random_hex(32)?;
        let session = Session {
            user: u.id.clone(),
            csrf: random_hex(32)?,
            expires: Instant::now() + self.session_length,
        };
        let mut s = self
            .sessions
            .lock()
            .map_err(|_| ServeError::Setup("session store poisoned".into()))?;
        s.retain(|_, v| v.expires > Instant::now());
        s.insert(id.clone(), session);
        Ok(Some(id))
    }

    /// The user of a live session.
    pub fn from_session(&self, id: Option<&str>) -> Option<Principal> {
        let id = id?;
        let s = self.sessions.lock().ok()?;
        let v = s.get(id).filter(|v| v.expires > Instant::now())?;
        let u = self.users.get(&v.user)?;
        Some(Principal::of(u, v.csrf.clone(), false))
    }

    pub fn sign_out(&self, id: Option<&str>) {
        if let (Some(id), Ok(mut s)) = (id, self.sessions.lock()) {
            s.remove(id);
        }
    }

    pub fn session_seconds(&self) -> u64 {
        self.session_length.as_secs()
    }
}

/// A cookie with the flags every cookie of the app carries.
pub fn cookie(name: &str, value: &str, path: &str, max_age: u64) -> String {
    format!("{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; Secure; SameSite=Strict")
}

/// The value of a cookie in a `Cookie` header.
pub fn cookie_value<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Constant-time equality of two tokens.
pub fn same_token(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}
