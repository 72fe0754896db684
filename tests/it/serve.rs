//! `onboard serve`: every route and API endpoint walked with every role against the
//! access table below (status codes), then the security basics: CSRF required, cookie
//! flags, identity headers (untrusted, forged, expired, valid), disclosure-controlled
//! counts for commissioners, the audit log, and no identifiers in URLs or logs. Runs the
//! router in-process (`tower::ServiceExt::oneshot`) over a small demo run built once.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{Request, Response, StatusCode, header};
use onboard::serve::App;
use tower::ServiceExt;

const PASSWORD: &str = "correct horse battery staple";
const IDP_ENV: &str = "ONBOARD_SERVE_TEST_IDP_SECRET";
const IDP_SECRET: &str = "a-shared-secret-of-32-bytes-long";
const ROLES: [&str; 4] = ["clinician", "commissioner", "analyst", "admin"];

struct Fixture {
    _dir: tempfile::TempDir,
    run: PathBuf,
    /// The practice the clinician is scoped to: that of the highest-ranked person.
    practice: String,
}

fn cli(args: &[&str]) -> anyhow::Result<u8> {
    use clap::Parser;
    let cli =
        onboard::cli::Cli::try_parse_from(std::iter::once("onboard").chain(args.iter().copied()))?;
    onboard::cli::run(cli)
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("demo");
        // A scored run to reuse while developing (it is copied, never written to).
        match std::env::var_os("ONBOARD_SERVE_TEST_RUN") {
            Some(from) => {
                let ok = std::process::Command::new("cp")
                    .arg("-a")
                    .arg(&from)
                    .arg(&run)
                    .status()
                    .unwrap();
                assert!(ok.success());
            }
            None => {
                let o = run.to_str().unwrap();
                assert_eq!(cli(&["demo", "--out", o, "--patients", "2000"]).unwrap(), 0);
            }
        }
        let practice = top_practice(&run);
        Fixture {
            _dir: dir,
            run,
            practice,
        }
    })
}

fn top_practice(run: &Path) -> String {
    use datafusion::arrow::array::AsArray;
    let dirs: Vec<PathBuf> = glob::glob(&format!("{}/gold/risk_scores/*/*", run.display()))
        .unwrap()
        .flatten()
        .collect();
    for b in super::run_ics::read_parquet_dir(&dirs[0]) {
        let rank = datafusion::arrow::compute::cast(
            b.column_by_name("rank").unwrap(),
            &datafusion::arrow::datatypes::DataType::Int64,
        )
        .unwrap();
        let rank = rank.as_primitive::<datafusion::arrow::datatypes::Int64Type>();
        let pr = datafusion::arrow::compute::cast(
            b.column_by_name("practice").unwrap(),
            &datafusion::arrow::datatypes::DataType::Utf8,
        )
        .unwrap();
        let pr = pr.as_string::<i32>();
        for i in 0..b.num_rows() {
            if rank.value(i) == 1 {
                return pr.value(i).to_string();
            }
        }
    }
    panic!("no rank 1")
}

/// An ICS file over the demo run with a `serve:` section: one user per role.
fn write_ics(f: &Fixture, name: &str, with_idp: bool) -> PathBuf {
    let demo = std::fs::read_to_string(f.run.join("ics.yaml")).unwrap();
    let hash = onboard::serve::auth::hash_password(PASSWORD).unwrap();
    let idp = if with_idp {
        format!("  identity_provider: {{ secret_env: {IDP_ENV}, max_age_seconds: 120 }}\n")
    } else {
        String::new()
    };
    let text = format!(
        "{demo}serve:\n  audit_log: {name}-audit.ndjson\n  access_log: {name}-access.log\n{idp}  users:\n\
         \x20   - {{ id: clin, name: Dr Clinician, role: clinician, practices: [{p}], password_hash: \"{hash}\" }}\n\
         \x20   - {{ id: comm, role: commissioner, password_hash: \"{hash}\" }}\n\
         \x20   - {{ id: anal, role: analyst, password_hash: \"{hash}\" }}\n\
         \x20   - {{ id: admin, role: admin, password_hash: \"{hash}\" }}\n",
        p = f.practice
    );
    let path = f.run.join(format!("{name}.yaml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn load(ics: &Path, rt: &tokio::runtime::Runtime) -> Arc<App> {
    let run = ics.parent().unwrap();
    let ics = onboard::ics::Ics::load(ics).unwrap_or_else(|e| panic!("{e}"));
    rt.block_on(App::load(&ics, Some(run)))
        .unwrap_or_else(|e| panic!("{e}"))
}

struct Got {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

async fn send(app: &Arc<App>, req: Request<Body>) -> Got {
    let r: Response<Body> = onboard::serve::router(app.clone())
        .oneshot(req)
        .await
        .unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    let body = axum::body::to_bytes(r.into_body(), 64 << 20).await.unwrap();
    Got {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

fn get(path: &str, cookie: Option<&str>) -> Request<Body> {
    let mut b = Request::get(path);
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, c);
    }
    b.body(Body::empty()).unwrap()
}

fn set_cookies(g: &Got) -> Vec<String> {
    g.headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

fn cookie_named(g: &Got, name: &str) -> Option<String> {
    set_cookies(g)
        .into_iter()
        .find(|c| c.starts_with(&format!("{name}=")))
        .map(|c| c.split(';').next().unwrap().to_string())
}

/// Sign in through the form (GET /login for the CSRF cookie, POST with it): the
/// session cookie, and the raw Set-Cookie header of the session.
async fn sign_in(app: &Arc<App>, user: &str) -> (String, String) {
    let form = send(app, get("/login", None)).await;
    let csrf_cookie = cookie_named(&form, "onboard_login_csrf").expect("sign-in CSRF cookie");
    let token = csrf_cookie.split_once('=').unwrap().1.to_string();
    // A browser loads /login again behind the user's back (a second tab; a favicon
    // request sent to sign-in): the form already shown must stay valid.
    let again = send(app, get("/login", Some(&csrf_cookie))).await;
    let csrf_cookie = cookie_named(&again, "onboard_login_csrf").unwrap_or(csrf_cookie);
    let body = format!(
        "csrf={token}&user={user}&password={}",
        PASSWORD.replace(' ', "+")
    );
    let r = send(
        app,
        Request::post("/login")
            .header(header::COOKIE, &csrf_cookie)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .unwrap(),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::SEE_OTHER,
        "{user} signs in: {}",
        r.body
    );
    let raw = set_cookies(&r)
        .into_iter()
        .find(|c| c.starts_with("onboard_session="))
        .unwrap();
    (cookie_named(&r, "onboard_session").unwrap(), raw)
}

/// Expected statuses: clinician, commissioner, analyst, admin, not signed in.
type Row = (&'static str, &'static str, [u16; 5]);

/// The access table. `{in}`: a patient of the clinician's practice; `{out}`: one of
/// another practice; `{none}`: no such reference.
const ACCESS: &[Row] = &[
    ("/healthz", "/healthz", [200, 200, 200, 200, 200]),
    (
        "/static/app.css",
        "/static/app.css",
        [200, 200, 200, 200, 200],
    ),
    ("/favicon.ico", "/favicon.ico", [204, 204, 204, 204, 204]),
    ("/login", "/login", [200, 200, 200, 200, 200]),
    ("/", "/", [303, 303, 303, 303, 303]),
    ("/risk", "/risk", [200, 200, 200, 200, 303]),
    ("/risk", "/risk?by=imd_quintile", [200, 200, 200, 200, 303]),
    (
        "/risk",
        "/risk?by=ethnic_group&pcn=nonexistent",
        [200, 200, 200, 200, 303],
    ),
    ("/risk", "/risk?by=segment", [200, 200, 200, 200, 303]),
    ("/population", "/population", [200, 200, 200, 200, 303]),
    ("/quality", "/quality", [200, 200, 200, 200, 303]),
    (
        "/cohorts",
        "/cohorts?band=very_high",
        [200, 403, 200, 200, 303],
    ),
    (
        "/cohorts",
        "/cohorts?decile=10&page=2",
        [200, 403, 200, 200, 303],
    ),
    (
        "/patients/{ref}",
        "/patients/{in}",
        [200, 403, 200, 200, 303],
    ),
    (
        "/patients/{ref}",
        "/patients/{out}",
        [404, 403, 200, 200, 303],
    ),
    (
        "/patients/{ref}",
        "/patients/{none}",
        [404, 403, 404, 404, 303],
    ),
    ("/admin/audit", "/admin/audit", [403, 403, 403, 200, 303]),
    ("/api/v1/me", "/api/v1/me", [200, 200, 200, 200, 401]),
    (
        "/api/v1/risk/distribution",
        "/api/v1/risk/distribution?by=pcn",
        [200, 200, 200, 200, 401],
    ),
    (
        "/api/v1/population",
        "/api/v1/population",
        [200, 200, 200, 200, 401],
    ),
    (
        "/api/v1/quality",
        "/api/v1/quality",
        [200, 200, 200, 200, 401],
    ),
    (
        "/api/v1/cohort",
        "/api/v1/cohort?band=high",
        [200, 403, 200, 200, 401],
    ),
    (
        "/api/v1/patients/{ref}",
        "/api/v1/patients/{in}",
        [200, 403, 200, 200, 401],
    ),
    (
        "/api/v1/patients/{ref}",
        "/api/v1/patients/{out}",
        [404, 403, 200, 200, 401],
    ),
    ("/api/v1/audit", "/api/v1/audit", [403, 403, 403, 200, 401]),
    ("(fallback)", "/no/such/page", [404, 404, 404, 404, 303]),
    (
        "(fallback)",
        "/api/v1/no-such-endpoint",
        [404, 404, 404, 404, 401],
    ),
];

fn references(app: &App, practice: &str) -> (String, String) {
    let p = &app.data.persons;
    let inside = p
        .iter()
        .find(|x| x.practice.as_deref() == Some(practice))
        .unwrap();
    let outside = p
        .iter()
        .find(|x| x.practice.as_deref() != Some(practice))
        .unwrap();
    (inside.reference.clone(), outside.reference.clone())
}

#[test]
fn every_route_answers_every_role_as_the_access_table_says() {
    let f = fixture();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = load(&write_ics(f, "walk", false), &rt);
    // Every GET route of the app has a row (a new route without one fails here).
    let covered: BTreeSet<&str> = ACCESS.iter().map(|r| r.0).collect();
    for r in onboard::serve::access::ROUTES
        .iter()
        .filter(|r| r.method == "GET")
    {
        assert!(
            covered.contains(r.path),
            "route {} has no row in the access table",
            r.path
        );
    }
    let (inside, outside) = references(&app, &f.practice);
    rt.block_on(async {
        let mut cookies = Vec::new();
        for user in ["clin", "comm", "anal", "admin"] {
            cookies.push(Some(sign_in(&app, user).await.0));
        }
        cookies.push(None);
        let mut failures = Vec::new();
        for (_, path, expected) in ACCESS {
            let path = path
                .replace("{in}", &inside)
                .replace("{out}", &outside)
                .replace("{none}", &"0".repeat(32));
            for (i, c) in cookies.iter().enumerate() {
                let got = send(&app, get(&path, c.as_deref())).await;
                if got.status.as_u16() != expected[i] {
                    let who = ROLES.get(i).copied().unwrap_or("anonymous");
                    failures.push(format!(
                        "{who} GET {path}: {} (expected {})",
                        got.status.as_u16(),
                        expected[i]
                    ));
                }
                if i == 4 && got.status != StatusCode::OK {
                    assert!(
                        !got.body.contains("band") || path.starts_with("/login"),
                        "unauthenticated {path} shows data"
                    );
                }
            }
        }
        // POST routes without a CSRF token: refused for everyone.
        for path in ["/logout", "/login"] {
            for c in &cookies {
                let mut b = Request::post(path)
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
                if let Some(c) = c {
                    b = b.header(header::COOKIE, c);
                }
                let got = send(&app, b.body(Body::from("user=admin&password=x")).unwrap()).await;
                if got.status != StatusCode::FORBIDDEN {
                    failures.push(format!("POST {path} without CSRF: {}", got.status));
                }
            }
        }
        assert!(
            failures.is_empty(),
            "access table mismatches:\n{}",
            failures.join("\n")
        );
    });
}

fn json_of(g: &Got) -> serde_json::Value {
    assert_eq!(g.status, StatusCode::OK, "{}", g.body);
    serde_json::from_str(&g.body).unwrap()
}

/// Every count in a JSON value (numbers under keys that hold counts).
fn counts_in(v: &serde_json::Value, key: &str, out: &mut Vec<u64>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                if let Some(n) = x.as_u64().filter(|_| {
                    [
                        "persons",
                        "high_risk",
                        "rows_read",
                        "rows_accepted",
                        "rows_quarantined",
                        "rows_duplicate",
                    ]
                    .contains(&k.as_str())
                        || key == "bands"
                        || key == "tiers"
                }) {
                    out.push(n);
                }
                counts_in(x, k, out);
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| {
            if let (Some(n), true) = (x.as_u64(), key == "bands") {
                out.push(n);
            }
            counts_in(x, key, out)
        }),
        _ => {}
    }
}

#[test]
fn roles_see_what_they_may_and_the_security_basics_hold() {
    let f = fixture();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = load(&write_ics(f, "rules", false), &rt);
    let (inside, outside) = references(&app, &f.practice);
    rt.block_on(async {
        let (clin, raw) = sign_in(&app, "clin").await;
        for flag in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
            assert!(raw.contains(flag), "session cookie lacks {flag}: {raw}");
        }
        // The clinician's cohort holds only their practice's patients.
        let c = json_of(
            &send(
                &app,
                get("/api/v1/cohort?decile=10&per_page=1000", Some(&clin)),
            )
            .await,
        );
        let rows = c["rows"].as_array().unwrap();
        assert!(!rows.is_empty());
        assert!(
            rows.iter().all(|r| r["practice"] == f.practice.as_str()),
            "clinician sees another practice"
        );
        let expected = app
            .data
            .persons
            .iter()
            .filter(|p| p.decile == 10 && p.practice.as_deref() == Some(&f.practice))
            .count();
        assert_eq!(c["persons"], expected);
        // Their patient's card has factors with labels, values and evidence.
        let p = json_of(
            &send(
                &app,
                get(&format!("/api/v1/patients/{inside}"), Some(&clin)),
            )
            .await,
        );
        let factors = p["factors"].as_array().unwrap();
        assert!(
            !factors.is_empty()
                && factors
                    .iter()
                    .all(|x| x["label"].is_string() && x["value"].is_number())
        );
        let html = send(&app, get(&format!("/patients/{inside}"), Some(&clin))).await;
        assert!(
            html.body.contains("explanation-card")
                && html.body.contains(factors[0]["label"].as_str().unwrap())
        );
        // The audit log has who, when, which person key, which page.
        let audit = std::fs::read_to_string(f.run.join("rules-audit.ndjson")).unwrap();
        let key = p["person_key"].as_str().unwrap();
        let rec: serde_json::Value = audit
            .lines()
            .rev()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|r| r["person_keys"][0] == key)
            .expect("audited");
        assert_eq!(
            (
                rec["user"].as_str(),
                rec["role"].as_str(),
                rec["page"].as_str()
            ),
            (Some("clin"), Some("clinician"), Some("/patients/{ref}"))
        );
        assert!(rec["at"].as_str().unwrap().ends_with('Z'));
        // The commissioner: aggregates only, no count in 1–7 anywhere.
        let (comm, _) = sign_in(&app, "comm").await;
        let mut n = Vec::new();
        for path in [
            "/api/v1/risk/distribution?by=practice",
            "/api/v1/risk/distribution?by=ethnic_group",
            "/api/v1/risk/distribution?by=imd_quintile",
            "/api/v1/quality",
            "/api/v1/population",
        ] {
            counts_in(
                &json_of(&send(&app, get(path, Some(&comm))).await),
                "",
                &mut n,
            );
        }
        assert!(
            n.iter().all(|c| *c == 0 || *c > 7),
            "commissioner sees a count in 1-7: {n:?}"
        );
        let page = send(&app, get("/risk?by=practice", Some(&comm))).await.body;
        assert!(
            !page.contains("/patients/") && !page.contains("/cohorts?"),
            "no patient links for commissioners"
        );
        for path in [
            format!("/patients/{outside}"),
            format!("/api/v1/patients/{inside}"),
            "/api/v1/cohort".into(),
        ] {
            assert_eq!(
                send(&app, get(&path, Some(&comm))).await.status,
                StatusCode::FORBIDDEN
            );
        }
        // CSRF: sign-out needs the session's token; with it, the session ends.
        let risk = send(&app, get("/risk", Some(&clin))).await.body;
        let token = risk
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_string();
        let post = |body: String, c: &str| {
            Request::post("/logout")
                .header(header::COOKIE, c)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(body))
                .unwrap()
        };
        assert_eq!(
            send(&app, post("csrf=wrong".into(), &clin)).await.status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            send(&app, post(format!("csrf={token}"), &clin))
                .await
                .status,
            StatusCode::SEE_OTHER
        );
        assert_eq!(
            send(&app, get("/api/v1/me", Some(&clin))).await.status,
            StatusCode::UNAUTHORIZED
        );
        // A wrong password is refused, and says nothing about who exists.
        let form = send(&app, get("/login", None)).await;
        let cc = cookie_named(&form, "onboard_login_csrf").unwrap();
        let t = cc.split_once('=').unwrap().1;
        let bad = send(
            &app,
            Request::post("/login")
                .header(header::COOKIE, &cc)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(format!("csrf={t}&user=clin&password=nope")))
                .unwrap(),
        )
        .await;
        assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
        assert!(cookie_named(&bad, "onboard_session").is_none());
        // An identity header is refused when no identity provider is trusted.
        let forged = onboard::serve::auth::sign_identity(b"guessed", "admin", now());
        let r = send(
            &app,
            Request::get("/api/v1/me")
                .header("x-onboard-identity", forged)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        // Security headers on every page.
        let h = send(&app, get("/quality", Some(&sign_in(&app, "anal").await.0))).await;
        assert!(
            h.headers["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("default-src 'none'")
        );
        assert_eq!(h.headers["cache-control"], "no-store");
    });
    no_identifiers_in_urls_or_logs(f, &app, &rt);
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn a_trusted_identity_provider_signs_in_and_forged_headers_are_refused() {
    let f = fixture();
    // SAFETY: the one test that reads this variable sets it first; no other thread reads it.
    unsafe { std::env::set_var(IDP_ENV, IDP_SECRET) };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = load(&write_ics(f, "idp", true), &rt);
    rt.block_on(async {
        let me = |v: String| {
            Request::get("/api/v1/me")
                .header("x-onboard-identity", v)
                .body(Body::empty())
                .unwrap()
        };
        let ok = onboard::serve::auth::sign_identity(IDP_SECRET.as_bytes(), "clin", now());
        let v = json_of(&send(&app, me(ok.clone())).await);
        assert_eq!(
            (v["user"].as_str(), v["role"].as_str()),
            (Some("clin"), Some("clinician"))
        );
        for bad in [
            onboard::serve::auth::sign_identity(b"not-the-shared-secret-at-all!!", "admin", now()),
            ok.replace("clin:", "admin:"),
            onboard::serve::auth::sign_identity(IDP_SECRET.as_bytes(), "clin", now() - 3600),
            onboard::serve::auth::sign_identity(IDP_SECRET.as_bytes(), "nobody", now()),
            "admin".into(),
        ] {
            assert_eq!(
                send(&app, me(bad.clone())).await.status,
                StatusCode::UNAUTHORIZED,
                "{bad}"
            );
        }
        // The header user's state-changing requests need their CSRF token too.
        let post = Request::post("/logout")
            .header("x-onboard-identity", ok)
            .body(Body::empty())
            .unwrap();
        assert_eq!(send(&app, post).await.status, StatusCode::FORBIDDEN);
    });
}

/// Every href of every page any role was served, and both logs: no person key in a
/// URL or the access log, no identifier (NHS number, name, postcode) anywhere.
fn no_identifiers_in_urls_or_logs(f: &Fixture, app: &Arc<App>, rt: &tokio::runtime::Runtime) {
    let keys: BTreeSet<String> = app.data.persons.iter().map(|p| p.key.clone()).collect();
    let identifiers = identity_values(&f.run);
    assert!(
        identifiers.len() > 100,
        "the fixture has identifiers to look for"
    );
    let mut urls = Vec::new();
    let mut bodies = String::new();
    rt.block_on(async {
        for user in ["clin", "anal", "admin", "comm"] {
            let (c, _) = sign_in(app, user).await;
            let mut todo = vec![
                "/risk".to_string(),
                "/cohorts?band=high".into(),
                "/quality".into(),
                "/population".into(),
                "/admin/audit".into(),
            ];
            let mut seen = BTreeSet::new();
            while let Some(u) = todo.pop() {
                if !seen.insert(u.clone()) || seen.len() > 40 {
                    continue;
                }
                let g = send(app, get(&u, Some(&c))).await;
                bodies.push_str(&g.body);
                for href in g
                    .body
                    .split("href=\"")
                    .skip(1)
                    .filter_map(|s| s.split('"').next())
                {
                    let href = href.replace("&amp;", "&");
                    urls.push(href.clone());
                    if href.starts_with("/patients/") || href.starts_with("/cohorts") {
                        todo.push(href);
                    }
                }
            }
        }
    });
    assert!(urls.iter().any(|u| u.starts_with("/patients/")));
    for u in &urls {
        assert!(
            !keys.iter().any(|k| u.contains(k.as_str())),
            "a person key in a URL: {u}"
        );
        assert!(
            !identifiers.iter().any(|i| u.contains(i.as_str())),
            "an identifier in a URL: {u}"
        );
    }
    let access = std::fs::read_to_string(f.run.join("rules-access.log")).unwrap();
    let audit = std::fs::read_to_string(f.run.join("rules-audit.ndjson")).unwrap();
    assert!(access.lines().count() > 20 && access.contains("/patients/{ref}"));
    for line in access.lines() {
        assert!(
            !keys.iter().any(|k| line.contains(k.as_str())),
            "a person key in the access log: {line}"
        );
        assert!(
            !app.data.persons.iter().any(|p| line.contains(&p.reference)),
            "a reference in the access log: {line}"
        );
    }
    for text in [&access, &audit, &bodies] {
        for i in &identifiers {
            assert!(!text.contains(i.as_str()), "identifier {i} leaked");
        }
    }
}

/// NHS numbers, family names and postcodes of the identity zone (long enough to be specific).
fn identity_values(run: &Path) -> BTreeSet<String> {
    use datafusion::arrow::array::{Array, AsArray};
    let mut out = BTreeSet::new();
    for b in super::run_ics::read_parquet_dir(&run.join("identity").join("person_identity")) {
        for col in ["nhs_number", "family_name", "postcode"] {
            let Some(c) = b.column_by_name(col) else {
                continue;
            };
            let c =
                datafusion::arrow::compute::cast(c, &datafusion::arrow::datatypes::DataType::Utf8)
                    .unwrap();
            let s = c.as_string::<i32>();
            for i in (0..s.len()).filter(|i| !s.is_null(*i)) {
                let v = s.value(i).trim();
                if v.len() >= 6 {
                    out.insert(v.to_string());
                }
            }
        }
    }
    out
}
