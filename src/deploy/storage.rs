//! Object-storage URIs for landing and output locations (`file://`, `s3://`,
//! `abfss://`, `gs://`), through the `object_store` crate that DataFusion re-exports.
//! `file://` locations are served by `LocalFileSystem` and registered on a session's
//! runtime; the cloud schemes are parsed and checked here and reached on the platforms
//! (Databricks reads them natively; Kubernetes pods mount them as volumes).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::object_store::local::LocalFileSystem;
use datafusion::prelude::SessionContext;

use super::settings::storage_scheme;

/// A checked storage location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A local directory (`file:///…` or a plain path).
    Local(PathBuf),
    /// A bucket or container in object storage.
    Remote { scheme: String, uri: String },
}

/// Parse a `--landing`/`--out` value or a `deploy.storage` URI; `setting` names it in
/// errors. Plain paths are local directories.
pub fn parse(setting: &str, text: &str) -> Result<Location, String> {
    if !text.contains("://") {
        return Ok(Location::Local(PathBuf::from(text)));
    }
    let scheme = storage_scheme(text).map_err(|e| format!("{setting}: {e}"))?;
    if scheme == "file" {
        let path = &text["file://".len()..];
        if !path.starts_with('/') {
            return Err(format!(
                "{setting}: `{text}` must be an absolute file:/// URI"
            ));
        }
        return Ok(Location::Local(PathBuf::from(path)));
    }
    Ok(Location::Remote {
        scheme: scheme.to_string(),
        uri: text.to_string(),
    })
}

/// A local directory for the embedded engine's scanner and writers.
pub fn local_dir(setting: &str, p: &Path) -> Result<PathBuf, String> {
    match parse(setting, &p.to_string_lossy())? {
        Location::Local(p) => Ok(p),
        Location::Remote { scheme, uri } => Err(format!(
            "{setting}: `{uri}` is in {scheme} object storage; the embedded engine reads and writes local or mounted directories (mount the bucket, as the rendered Kubernetes CronJobs do), or run on Databricks"
        )),
    }
}

/// Register the object store serving `uri` on the session (`file://`: the local file
/// system), so plans can scan and write it by URL.
pub fn register(ctx: &SessionContext, setting: &str, uri: &str) -> Result<ObjectStoreUrl, String> {
    match parse(setting, uri)? {
        Location::Local(_) => {
            let url = ObjectStoreUrl::local_filesystem();
            ctx.register_object_store(url.as_ref(), Arc::new(LocalFileSystem::new()));
            Ok(url)
        }
        Location::Remote { scheme, uri } => Err(format!(
            "{setting}: `{uri}`: this onboard build has no {scheme} object-store client (the default build stays lean); use a mounted path or the Databricks bundle"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations() {
        assert_eq!(
            parse("x", "file:///data/landing").unwrap(),
            Location::Local(PathBuf::from("/data/landing"))
        );
        assert!(matches!(
            parse("x", "s3://bucket/landing").unwrap(),
            Location::Remote { .. }
        ));
        assert!(matches!(
            parse("x", "abfss://c@acct.dfs.core.windows.net/p").unwrap(),
            Location::Remote { .. }
        ));
        let e = parse("deploy.storage.landing", "ftp://host/x").unwrap_err();
        assert!(
            e.contains("deploy.storage.landing") && e.contains("ftp://"),
            "{e}"
        );
        assert!(parse("x", "file://relative").is_err());
        assert!(local_dir("--landing", Path::new("gs://b/x")).is_err());
    }

    #[tokio::test]
    async fn file_store_is_registered_and_used() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t.csv"), "a,b\n1,x\n2,y\n").unwrap();
        let ctx = SessionContext::new();
        let uri = format!("file://{}", dir.path().display());
        register(&ctx, "deploy.storage.landing", &uri).unwrap();
        let df = ctx
            .read_csv(format!("{uri}/t.csv"), Default::default())
            .await
            .unwrap();
        assert_eq!(df.count().await.unwrap(), 2);
        assert!(register(&ctx, "deploy.storage.output", "s3://b/o").is_err());
    }
}
