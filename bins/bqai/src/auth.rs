//! Authentication wiring: the pepper, the authenticator over the store's keys, and the
//! start-up rule that an open server only listens on loopback.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bqai_core::auth::Authenticator;
use bqai_core::auth::keys::{KeyHasher, random_bytes};
use bqai_core::ports::{KeyStore, NonceStore};
use secrecy::ExposeSecret;

use crate::config::{AuthMode, Settings};

/// Where the pepper comes from when none is configured.
pub fn default_pepper_path(settings: &Settings) -> PathBuf {
    settings.data_dir.join("auth.pepper")
}

/// The key hasher with the configured pepper (see [`crate::config::AuthSettings`]).
pub fn hasher(settings: &Settings) -> anyhow::Result<KeyHasher> {
    let pepper = secret(
        settings.auth.pepper.as_ref(),
        settings.auth.pepper_file.as_deref(),
        &default_pepper_path(settings),
        "auth pepper",
        "auth.pepper or auth.pepper_file",
    )?;
    KeyHasher::new(&pepper).map_err(|e| anyhow::anyhow!("{e}"))
}

/// The signer of export download links (see [`crate::config::ExportConfig`]): the configured
/// secret, or one generated once in `<data_dir>/export-links.key`.
pub fn link_signer(settings: &Settings) -> anyhow::Result<bqai_core::export::LinkSigner> {
    let export = &settings.export;
    let key = secret(
        export.link_secret.as_ref(),
        export.link_secret_file.as_deref(),
        &settings.data_dir.join("export-links.key"),
        "export link secret",
        "export.link_secret or export.link_secret_file",
    )?;
    if key.len() < 16 {
        anyhow::bail!("the export link secret must be at least 16 bytes");
    }
    Ok(bqai_core::export::LinkSigner::new(
        key,
        export.link_key_version,
    ))
}

/// The page token signer: `query.page_token_secret`, else `query.page_token_secret_file`,
/// else `<data_dir>/page-tokens.key` (created at random when missing).
pub fn page_signer(settings: &Settings) -> anyhow::Result<bqai_core::paging::PageSigner> {
    let query = &settings.query;
    let key = secret(
        query.page_token_secret.as_ref(),
        query.page_token_secret_file.as_deref(),
        &settings.data_dir.join("page-tokens.key"),
        "page token secret",
        "query.page_token_secret or query.page_token_secret_file",
    )?;
    if key.len() < 16 {
        anyhow::bail!("the page token secret must be at least 16 bytes");
    }
    Ok(bqai_core::paging::PageSigner::new(key))
}

/// A server secret: `configured`, else the contents of `file`, else those of `default_file`,
/// created with 32 random bytes (hex, mode 0600) when missing.
fn secret(
    configured: Option<&secrecy::SecretString>,
    file: Option<&Path>,
    default_file: &Path,
    what: &str,
    keys: &str,
) -> anyhow::Result<Vec<u8>> {
    if let Some(p) = configured {
        return Ok(p.expose_secret().as_bytes().to_vec());
    }
    if let Some(path) = file {
        return read_secret(path, what);
    }
    if !default_file.exists() {
        create_secret(default_file)?;
        tracing::warn!(
            path = %default_file.display(),
            "generated a new {what}; servers sharing this store must share it ({keys})"
        );
    }
    read_secret(default_file, what)
}

fn read_secret(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("could not read the {what} file {}", path.display()))?;
    Ok(text.trim_end_matches(['\n', '\r']).as_bytes().to_vec())
}

fn create_secret(path: &Path) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("could not create {}", dir.display()))?;
    }
    let secret = hex::encode(random_bytes::<32>().map_err(|e| anyhow::anyhow!("{e}"))?);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(mut f) => {
            f.write_all(secret.as_bytes())?;
            f.write_all(b"\n")?;
            Ok(())
        }
        // Another process created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e).with_context(|| format!("could not create {}", path.display())),
    }
}

/// The authenticator for `[auth] mode`, or `None` when authentication is off.
///
/// WebSocket tickets are single-use: their nonces are claimed in `nonces` (shared through
/// Redis when `cache.url` is set, so a ticket opens one connection across all replicas).
pub fn authenticator(
    settings: &Settings,
    keys: Arc<dyn KeyStore>,
    nonces: Arc<dyn NonceStore>,
) -> anyhow::Result<Option<Authenticator>> {
    if settings.auth.mode == AuthMode::Off {
        return Ok(None);
    }
    let mut auth = Authenticator::new(keys, hasher(settings)?)
        .with_ticket_ttl(Duration::from_secs(settings.auth.ticket_ttl_secs))
        .with_single_use_tickets(nonces);
    if let (AuthMode::ApiKeyOidc, Some(oidc)) = (settings.auth.mode, &settings.auth.oidc) {
        let verifier =
            bqai_oidc::OidcVerifier::new(oidc.clone()).map_err(|e| anyhow::anyhow!("{e}"))?;
        tracing::info!(issuer = %oidc.issuer, "bearer tokens of this OIDC issuer are accepted");
        auth = auth.with_tokens(Arc::new(verifier));
    }
    Ok(Some(auth))
}

/// Refuses a non-loopback bind with authentication off unless explicitly allowed, and says
/// loudly that an open server is open.
pub fn check_bind(settings: &Settings) -> anyhow::Result<()> {
    if settings.auth.mode != AuthMode::Off {
        return Ok(());
    }
    if !settings.binds_loopback() && !settings.server.allow_insecure_bind {
        anyhow::bail!(
            "refusing to listen on {}: authentication is off ([auth] mode = \"off\"), so \
             anyone who can reach that address could query your warehouse. Turn it on \
             ([auth] mode = \"api_key\", then `bqai keys create --name admin --role admin`), \
             bind 127.0.0.1, or pass --insecure-no-auth if you really mean it",
            settings.server.host
        );
    }
    tracing::warn!(
        host = %settings.server.host,
        "AUTHENTICATION IS OFF: every caller that reaches {} is an admin. Set [auth] mode = \
         \"api_key\" before exposing this server",
        settings.server.host
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_open_server_is_kept_on_loopback() {
        let mut s = Settings::default();
        s.server.host = "0.0.0.0".into();
        let err = check_bind(&s).unwrap_err().to_string();
        assert!(err.contains("refusing to listen on 0.0.0.0"), "{err}");
        assert!(err.contains("--insecure-no-auth"), "{err}");
        s.server.allow_insecure_bind = true;
        check_bind(&s).unwrap();
        s.server.allow_insecure_bind = false;
        s.auth.mode = AuthMode::ApiKey;
        check_bind(&s).unwrap();
        s.auth.mode = AuthMode::Off;
        s.server.host = "127.0.0.1".into();
        check_bind(&s).unwrap();
    }

    #[test]
    fn the_pepper_comes_from_config_file_or_a_generated_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Settings {
            data_dir: dir.path().join("data"),
            ..Settings::default()
        };
        let generated = hasher(&s).unwrap();
        let again = hasher(&s).unwrap();
        assert_eq!(generated.hash("id", "secret"), again.hash("id", "secret"));
        let file = dir.path().join("pepper");
        std::fs::write(&file, "a pepper from a file, 16+\n").unwrap();
        s.auth.pepper_file = Some(file);
        let from_file = hasher(&s).unwrap();
        assert_ne!(
            from_file.hash("id", "secret"),
            generated.hash("id", "secret")
        );
        s.auth.pepper_file = None;
        s.auth.pepper = Some("a pepper from a file, 16+".to_string().into());
        assert_eq!(
            hasher(&s).unwrap().hash("id", "secret"),
            from_file.hash("id", "secret"),
            "the file's trailing newline is not part of the pepper"
        );
        s.auth.pepper = Some("short".to_string().into());
        assert!(hasher(&s).is_err());
    }
}
