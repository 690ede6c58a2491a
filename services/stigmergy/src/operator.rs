//! The operator credential: from `STIGMERGY_OPERATOR_TOKEN`, or generated on first start and kept
//! (readable by its owner only) in the data directory.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use rand::RngCore;

/// Where the operator token came from.
#[derive(Debug, PartialEq, Eq)]
pub enum TokenSource {
    Configured,
    Stored,
    /// Generated now: it must be shown to the operator, once.
    Generated,
}

/// The operator token in force, and where it came from.
pub fn operator_token(
    configured: Option<&str>,
    data_dir: &Path,
) -> anyhow::Result<(String, TokenSource)> {
    if let Some(token) = configured.map(str::trim).filter(|t| !t.is_empty()) {
        return Ok((token.to_owned(), TokenSource::Configured));
    }
    let path = data_dir.join("operator-token");
    match std::fs::read_to_string(&path) {
        Ok(stored) if !stored.trim().is_empty() => {
            return Ok((stored.trim().to_owned(), TokenSource::Stored));
        }
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(error).with_context(|| format!("cannot read {}", path.display())),
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = format!("stgop_{}", hex::encode(bytes));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(token.as_bytes())?;
    file.sync_all()?;
    Ok((token, TokenSource::Generated))
}
