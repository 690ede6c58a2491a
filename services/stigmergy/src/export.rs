//! `stigmergy export`: an open-data snapshot of the platform in one directory, for mirrors,
//! archives and researchers who want the whole data set at once rather than crawling
//! `/id/{id}`. It holds every event of the log as NDJSON (retractions included: the log is
//! append-only and a consumer applies them), every resource's JSON-LD document byte for byte as
//! the gateway serves it at `GET /id/{id}` under the same public base URL, the JSON-LD context,
//! a `manifest.json` naming every file with its size and SHA-256 (and, for a document, its IRI
//! and item URL), and a `SHA256SUMS` that `sha256sum -c` checks. The layout follows the URL
//! scheme, so that a static web server can serve it (`docs/open-data.md`, "Export").
//!
//! The resources are those the events touch ([`EventIndex::of`]) for which the views hold a
//! record (what `GET /id/{id}` answers for), in the order the log first mentions them. The
//! events are those up to the log's head when the export starts; the documents are read from
//! the views at the position they hold then (`asOf`), and the manifest says whether the views
//! moved while they were read (`asOfEnd`).
//!
//! Nothing is written into the target directory until the snapshot is complete: it is written
//! into `<DIR>.partial` beside it, every file synced to disk, and renamed to `<DIR>` at the end.
//! An interrupted export leaves only `<DIR>.partial`, which the next export removes. An existing
//! `<DIR>` is left alone unless it is empty, or holds a previous export and `--force` is given.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use serde::Serialize;
use sha2::{Digest, Sha256};
use stigmergy_domain::views::EventIndex;
use stigmergy_domain::views::document::{self, CONTEXT, CONTEXT_PATH};
use stigmergy_domain::{EventPayload, Iri, LogPosition};
use stigmergy_log::LogUrl;
use stigmergy_store::OrganizationDirectory;

use crate::app::{open_directory, open_log, open_views};
use crate::config::Config;

/// The `format` of the manifest.
pub const FORMAT: &str = "stigmergy-export";

/// The version of the layout; a change a reader must know of gets a new one.
pub const FORMAT_VERSION: u32 = 1;

/// The longest file name a document gets from its percent-encoded IRI; a longer one is named
/// after the IRI's SHA-256 instead (`sha256-<hex>.jsonld`).
pub const MAX_FILE_NAME: usize = 200;

/// What marks `<DIR>.partial` as an unfinished export (removed before it is renamed).
const PARTIAL_MARKER: &str = ".stigmergy-export-partial";

/// Events read from the log at once.
const PAGE: usize = 10_000;

/// What to export, and where.
#[derive(Clone, Debug)]
pub struct ExportOptions {
    /// The directory the snapshot is written to.
    pub out: PathBuf,
    /// The public base URL the documents link with; `[open] public_url` when `None`.
    pub public_url: Option<String>,
    /// Replace `out` when it holds a previous export.
    pub force: bool,
    /// Draw a progress bar on standard error (only when it is a terminal).
    pub progress: bool,
}

/// What an export wrote.
#[derive(Clone, Debug)]
pub struct ExportReport {
    pub out: PathBuf,
    /// What was written: the manifest's `counts`.
    pub counts: Counts,
    pub as_of: u64,
    pub as_of_end: u64,
    pub log_head: u64,
    pub elapsed: Duration,
}

/// Checks a public base URL and returns it without its trailing slashes, as the gateway links
/// with it: an absolute `http` or `https` URL with a host, and no user, query or fragment.
pub fn public_base(url: &str) -> Result<String, String> {
    if url.trim() != url || url.is_empty() {
        return Err("it is empty or has spaces around it".into());
    }
    let base = url.trim_end_matches('/');
    let parsed = reqwest::Url::parse(base).map_err(|error| error.to_string())?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!(
            "its scheme is {:?}, not http or https",
            parsed.scheme()
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("it has no host".into());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("it holds a user name or password".into());
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err("it has a query or a fragment".into());
    }
    Ok(base.to_owned())
}

/// The base URL of an export: `--public-url`, else `[open] public_url`, checked.
fn base_url(config: &Config, options: &ExportOptions) -> anyhow::Result<String> {
    let (url, source) = match (&options.public_url, &config.open.public_url) {
        (Some(url), _) => (url, "--public-url"),
        (None, Some(url)) => (url, "[open] public_url"),
        (None, None) => bail!(
            "stigmergy export needs the public base URL the items are published under: every \
             document links to its own URL, to its design's, inputs' and outputs' and to the \
             JSON-LD context, all below that base ({{base}}/id/…, {{base}}{CONTEXT_PATH}), so a \
             snapshot without it would link nowhere. Give --public-url https://… or set \
             [open] public_url (STIGMERGY__OPEN__PUBLIC_URL)"
        ),
    };
    public_base(url).map_err(|why| {
        anyhow::anyhow!(
            "{source} {url:?} is not a usable public base URL: {why}; give an absolute http(s) \
             URL such as https://trace.example.org"
        )
    })
}

/// What is at the target directory before the export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Existing {
    Nothing,
    Empty,
    /// A previous export, replaced with `--force`.
    Export,
}

/// Where the snapshot goes: written into `partial`, renamed to `out`; a previous export is
/// moved to `replaced` for the time of the swap.
#[derive(Debug)]
struct Target {
    out: PathBuf,
    partial: PathBuf,
    replaced: PathBuf,
    parent: PathBuf,
    existing: Existing,
}

/// Whether `dir` holds a finished export (its manifest says so).
fn is_export(dir: &Path) -> bool {
    fs::read(dir.join("manifest.json"))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .is_some_and(|manifest| manifest["format"] == FORMAT)
}

/// Decides where to write, refusing what would lose someone's files. Writes nothing.
fn plan(out: &Path, force: bool) -> anyhow::Result<Target> {
    let Some(name) = out.file_name().and_then(|name| name.to_str()) else {
        bail!(
            "--out {}: give a directory with a (UTF-8) name of its own",
            out.display()
        );
    };
    let parent = match out.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let existing = match fs::symlink_metadata(out) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => Existing::Nothing,
        Err(error) => {
            return Err(error).with_context(|| format!("cannot look at {}", out.display()));
        }
        Ok(meta) if meta.file_type().is_symlink() => bail!(
            "{} is a symbolic link: give the directory itself as --out",
            out.display()
        ),
        Ok(meta) if !meta.is_dir() => bail!("{} exists and is not a directory", out.display()),
        Ok(_) => {
            let empty = fs::read_dir(out)
                .with_context(|| format!("cannot read {}", out.display()))?
                .next()
                .is_none();
            if empty {
                Existing::Empty
            } else if !is_export(out) {
                bail!(
                    "{} is not empty and holds no stigmergy export: choose another --out \
                     (even --force replaces only a previous export)",
                    out.display()
                );
            } else if force {
                Existing::Export
            } else {
                bail!(
                    "{} already holds an export: pass --force to replace it, or choose another \
                     --out",
                    out.display()
                );
            }
        }
    };
    let target = Target {
        out: out.to_path_buf(),
        partial: out.with_file_name(format!("{name}.partial")),
        replaced: out.with_file_name(format!("{name}.replaced")),
        parent,
        existing,
    };
    for leftover in [&target.partial, &target.replaced] {
        if leftover.exists() && !is_leftover(leftover) {
            bail!(
                "{} exists and is not what an earlier export left: move it away first",
                leftover.display()
            );
        }
    }
    Ok(target)
}

/// Whether `dir` is an export's working directory left by an interrupted run.
fn is_leftover(dir: &Path) -> bool {
    dir.is_dir() && (dir.join(PARTIAL_MARKER).exists() || is_export(dir))
}

impl Target {
    /// Removes what an interrupted export left, and creates the empty working directory.
    fn prepare(&self) -> anyhow::Result<()> {
        for leftover in [&self.partial, &self.replaced] {
            if is_leftover(leftover) {
                fs::remove_dir_all(leftover)
                    .with_context(|| format!("cannot remove {}", leftover.display()))?;
            }
        }
        fs::create_dir_all(&self.parent)
            .with_context(|| format!("cannot create {}", self.parent.display()))?;
        fs::create_dir(&self.partial)
            .with_context(|| format!("cannot create {}", self.partial.display()))?;
        File::create(self.partial.join(PARTIAL_MARKER))
            .with_context(|| format!("cannot write in {}", self.partial.display()))?;
        for dir in ["resources", "context"] {
            fs::create_dir(self.partial.join(dir))
                .with_context(|| format!("cannot create {dir}/ in {}", self.partial.display()))?;
        }
        Ok(())
    }

    /// Makes the finished snapshot `out`: syncs every file and directory, then renames.
    fn publish(&self, files: &[FileEntry]) -> anyhow::Result<()> {
        let sync = || -> io::Result<()> {
            for file in files {
                File::open(self.partial.join(&file.path))?.sync_all()?;
            }
            fs::remove_file(self.partial.join(PARTIAL_MARKER))?;
            for dir in ["resources", "context", ""] {
                File::open(self.partial.join(dir))?.sync_all()?;
            }
            Ok(())
        };
        sync().with_context(|| format!("cannot sync {} to disk", self.partial.display()))?;
        let rename = |from: &Path, to: &Path| {
            fs::rename(from, to)
                .with_context(|| format!("cannot rename {} to {}", from.display(), to.display()))
        };
        match self.existing {
            // POSIX renames a directory over an empty one.
            Existing::Nothing | Existing::Empty => rename(&self.partial, &self.out)?,
            Existing::Export => {
                rename(&self.out, &self.replaced)?;
                if let Err(error) = rename(&self.partial, &self.out) {
                    // Put the previous export back.
                    let _ = fs::rename(&self.replaced, &self.out);
                    return Err(error);
                }
                fs::remove_dir_all(&self.replaced)
                    .with_context(|| format!("cannot remove {}", self.replaced.display()))?;
            }
        }
        File::open(&self.parent)
            .and_then(|dir| dir.sync_all())
            .with_context(|| format!("cannot sync {}", self.parent.display()))
    }
}

/// A file of the snapshot, as the manifest lists it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct FileEntry {
    /// Relative to the snapshot's directory, with `/`.
    path: String,
    media_type: &'static str,
    bytes: u64,
    sha256: String,
    /// For a document: the resource's IRI, item URL, kind, version, and whether its creation
    /// was retracted.
    #[serde(skip_serializing_if = "Option::is_none")]
    iri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    retracted: bool,
}

/// `manifest.json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Manifest<'a> {
    format: &'static str,
    format_version: u32,
    generator: String,
    created_at: String,
    public_url: &'a str,
    context: String,
    document_format: &'static str,
    as_of: u64,
    as_of_end: u64,
    log_head: u64,
    counts: Counts,
    files: &'a [FileEntry],
}

/// What an export holds, as its manifest counts it.
#[derive(Clone, Copy, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    pub events: u64,
    pub retractions: u64,
    /// Resource documents written.
    pub resources: u64,
    /// IRIs the events touch that the views held no record of (they were behind the log).
    pub pending: u64,
    /// Files listed in the manifest, and their bytes.
    pub files: u64,
    pub bytes: u64,
}

/// A file being written, hashed and counted as it goes.
struct Sink {
    path: String,
    writer: BufWriter<File>,
    hasher: Sha256,
    bytes: u64,
}

impl Sink {
    fn create(root: &Path, path: &str) -> anyhow::Result<Self> {
        let file = File::create(root.join(path))
            .with_context(|| format!("cannot create {}", root.join(path).display()))?;
        Ok(Self {
            path: path.to_owned(),
            writer: BufWriter::with_capacity(256 * 1024, file),
            hasher: Sha256::new(),
            bytes: 0,
        })
    }

    fn finish(mut self, media_type: &'static str) -> anyhow::Result<FileEntry> {
        self.writer
            .flush()
            .with_context(|| format!("cannot write {}", self.path))?;
        Ok(FileEntry {
            path: self.path,
            media_type,
            bytes: self.bytes,
            sha256: hex::encode(self.hasher.finalize()),
            iri: None,
            url: None,
            kind: None,
            version: None,
            retracted: false,
        })
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.writer.write(buf)?;
        self.hasher.update(&buf[..written]);
        self.bytes += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }
}

/// Writes a whole file at once.
fn write_file(
    root: &Path,
    path: &str,
    media_type: &'static str,
    content: &[u8],
) -> anyhow::Result<FileEntry> {
    let mut sink = Sink::create(root, path)?;
    sink.write_all(content)
        .with_context(|| format!("cannot write {path}"))?;
    sink.finish(media_type)
}

/// The file a resource's document is written to, below `resources/`: its IRI percent-encoded
/// as in its item URL, or its SHA-256 when that name would be too long.
pub fn document_file_name(iri: &Iri) -> String {
    let encoded = document::encode_segment(iri.as_str());
    if encoded.len() + ".jsonld".len() <= MAX_FILE_NAME {
        format!("{encoded}.jsonld")
    } else {
        format!(
            "sha256-{}.jsonld",
            hex::encode(Sha256::digest(iri.as_str().as_bytes()))
        )
    }
}

fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Refuses a data directory without the embedded log or views (rather than creating empty
/// ones there and exporting nothing).
fn check_sources(config: &Config) -> anyhow::Result<()> {
    if let LogUrl::Embedded(dir) = config.log_url().parse::<LogUrl>()?
        && !dir.join("events.sqlite").is_file()
    {
        bail!(
            "no event log in {}: expected events.sqlite there; give the --data-dir of a \
             `stigmergy serve` (or --log)",
            dir.display()
        );
    }
    if config.views.is_none() && !config.data_dir.join("views.sqlite").is_file() {
        bail!(
            "no views store in {}: the documents are read from the views; build them with \
             `stigmergy project --data-dir {}` first (or give --store)",
            config.data_dir.display(),
            config.data_dir.display()
        );
    }
    Ok(())
}

/// A progress bar on standard error when asked for and it is a terminal; else a hidden one.
fn progress_bar(options: &ExportOptions, length: u64, prefix: &'static str) -> ProgressBar {
    let target = if options.progress && io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(length), target).with_prefix(prefix);
    if let Ok(style) = ProgressStyle::with_template(
        "{prefix:>9} [{bar:40}] {human_pos}/{human_len} ({rate}, {eta} left)",
    ) {
        bar.set_style(
            style
                .with_key(
                    "rate",
                    |state: &ProgressState, out: &mut dyn std::fmt::Write| {
                        let _ = write!(out, "{:.0}/s", state.per_sec());
                    },
                )
                .progress_chars("=> "),
        );
    }
    bar
}

/// Writes the snapshot (see the module's documentation).
pub async fn export(config: &Config, options: &ExportOptions) -> anyhow::Result<ExportReport> {
    let started = Instant::now();
    let base = base_url(config, options)?;
    let target = plan(&options.out, options.force)?;
    check_sources(config)?;

    // The views' position first, then the log's head (the embedded log reads it when it is
    // opened): on the embedded log the views never run ahead of it, so every event they reflect
    // is exported. On Kafka the views are the consumer group's (as the gateway reads them).
    let projector = match config.log_url().parse::<LogUrl>()? {
        LogUrl::Kafka(_) => config.kafka.group.clone(),
        LogUrl::Embedded(_) => crate::project::PROJECTOR.to_owned(),
    };
    let views = open_views(config, stigmergy_store::WhenStale::Refuse)?;
    let as_of = views.position(&projector).await?.0;
    let log = open_log(config).await?;
    log.sync().await.context("cannot catch up with the log")?;
    let head = log.head();
    let directory = match config.views.as_deref() {
        Some(url) if is_postgres(url) => Some(open_directory(config)?),
        _ if config.data_dir.join("organizations.sqlite").is_file() => {
            Some(open_directory(config)?)
        }
        _ => {
            tracing::warn!(
                data_dir = %config.data_dir.display(),
                "no organisation directory in the data directory: documents name no organisation"
            );
            None
        }
    };

    target.prepare()?;
    let written = write_snapshot(
        &target.partial,
        &base,
        &*log,
        head,
        &*views,
        &projector,
        directory.as_ref(),
        as_of,
        options,
    )
    .await;
    let published = written.and_then(|(files, report)| {
        target.publish(&files)?;
        Ok(report)
    });
    let mut report = match published {
        Ok(report) => report,
        Err(error) => {
            // Best effort (gone once renamed): the next export removes it anyway.
            let _ = fs::remove_dir_all(&target.partial);
            return Err(error);
        }
    };
    report.out = target.out;
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Writes every file into `root`; the manifest and `SHA256SUMS` last.
#[allow(clippy::too_many_arguments)]
async fn write_snapshot(
    root: &Path,
    base: &str,
    log: &dyn stigmergy_log::EventLog,
    head: LogPosition,
    views: &dyn stigmergy_store::ViewStore,
    projector: &str,
    directory: Option<&OrganizationDirectory>,
    as_of: u64,
    options: &ExportOptions,
) -> anyhow::Result<(Vec<FileEntry>, ExportReport)> {
    let mut files = Vec::new();

    // Every event up to the head, in log order; and the resources they touch, in the order
    // they are first touched.
    let bar = progress_bar(options, head.0, "events");
    let mut sink = Sink::create(root, "events.ndjson")?;
    let mut candidates: Vec<Iri> = Vec::new();
    let mut seen: HashSet<Iri> = HashSet::new();
    let (mut events, mut retractions) = (0_u64, 0_u64);
    let mut after = LogPosition(0);
    'pages: while after < head {
        let page = log
            .read_after(after, PAGE)
            .await
            .with_context(|| format!("cannot read the log after position {}", after.0))?;
        if page.is_empty() {
            break;
        }
        for stored in page {
            if stored.position > head {
                break 'pages;
            }
            serde_json::to_writer(&mut sink, &stored.event)
                .context("cannot write events.ndjson")?;
            sink.write_all(b"\n")
                .context("cannot write events.ndjson")?;
            for touch in EventIndex::of(&stored.event, stored.position).touches {
                if seen.insert(touch.resource.clone()) {
                    candidates.push(touch.resource);
                }
            }
            if matches!(stored.event.payload, EventPayload::EventRetracted(_)) {
                retractions += 1;
            }
            events += 1;
            after = stored.position;
        }
        bar.set_position(after.0);
    }
    bar.finish_and_clear();
    drop(seen);
    files.push(sink.finish("application/x-ndjson")?);

    // Every resource's document, as `GET /id/{id}` serves it.
    let bar = progress_bar(options, candidates.len() as u64, "resources");
    let names_of = |id: &Iri| directory.and_then(|directory| directory.name_of(id));
    let mut names = HashSet::new();
    let mut pending = 0_u64;
    for iri in &candidates {
        let gathered = stigmergy_store::document::gather(views, &names_of, as_of, iri)
            .await
            .with_context(|| format!("cannot read the views of {iri}"))?;
        bar.inc(1);
        let Some(item) = gathered else {
            pending += 1;
            continue;
        };
        let document = item.document(base);
        let text = serde_json::to_string_pretty(&document)?;
        let name = document_file_name(iri);
        if !names.insert(name.clone()) {
            bail!("two resources would be written to resources/{name}");
        }
        let mut entry = write_file(
            root,
            &format!("resources/{name}"),
            "application/ld+json",
            text.as_bytes(),
        )?;
        entry.iri = Some(iri.as_str().to_owned());
        entry.url = Some(document::item_url(base, iri));
        entry.kind = Some(item.record.kind.name().to_owned());
        entry.version = document["version"].as_str().map(str::to_owned);
        entry.retracted = item.retraction().is_some();
        files.push(entry);
    }
    bar.finish_and_clear();
    let resources = names.len() as u64;
    let as_of_end = views.position(projector).await?.0;
    if pending > 0 {
        tracing::warn!(
            pending,
            as_of,
            log_head = head.0,
            "the views had no record yet of some resources the log mentions: their documents \
             are missing; export again once the views have caught up"
        );
    }
    if as_of_end != as_of {
        tracing::warn!(
            as_of,
            as_of_end,
            "events were projected while the documents were read: some documents reflect \
             positions after asOf (stop the writers for a point-in-time snapshot)"
        );
    }

    let context_path = format!("context/{}", context_file_name());
    files.push(write_file(
        root,
        &context_path,
        "application/ld+json",
        CONTEXT.as_bytes(),
    )?);

    let counts = Counts {
        events,
        retractions,
        resources,
        pending,
        files: files.len() as u64,
        bytes: files.iter().map(|file| file.bytes).sum(),
    };
    let manifest = Manifest {
        format: FORMAT,
        format_version: FORMAT_VERSION,
        generator: format!("stigmergy {}", env!("CARGO_PKG_VERSION")),
        created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        public_url: base,
        context: format!("{base}{CONTEXT_PATH}"),
        document_format: document::FORMAT,
        as_of,
        as_of_end,
        log_head: head.0,
        counts,
        files: &files,
    };
    let mut text = serde_json::to_string_pretty(&manifest)?;
    text.push('\n');
    let manifest_entry = write_file(root, "manifest.json", "application/json", text.as_bytes())?;

    let mut sums = String::new();
    for file in files.iter().chain([&manifest_entry]) {
        sums.push_str(&format!("{}  {}\n", file.sha256, file.path));
    }
    let sums_entry = write_file(root, "SHA256SUMS", "text/plain", sums.as_bytes())?;

    let report = ExportReport {
        out: PathBuf::new(),
        counts,
        as_of,
        as_of_end,
        log_head: head.0,
        elapsed: Duration::ZERO,
    };
    files.push(manifest_entry);
    files.push(sums_entry);
    Ok((files, report))
}

/// The context's file name in `context/`: the last segment of [`CONTEXT_PATH`].
fn context_file_name() -> &'static str {
    CONTEXT_PATH.rsplit('/').next().unwrap_or("v1.jsonld")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn public_urls_must_be_absolute_http_urls_with_a_host() {
        assert_eq!(
            public_base("https://trace.example.org/").unwrap(),
            "https://trace.example.org"
        );
        assert_eq!(
            public_base("http://127.0.0.1:8080/open").unwrap(),
            "http://127.0.0.1:8080/open"
        );
        for bad in [
            "",
            "trace.example.org",
            "ftp://trace.example.org",
            "https://user:pw@trace.example.org",
            "https://trace.example.org/?a=b",
            "https://trace.example.org/#top",
            " https://trace.example.org",
            "file:///tmp",
        ] {
            assert!(public_base(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn long_iris_get_hashed_file_names() {
        let short = Iri::parse("https://valldaura.example/lots/1").unwrap();
        assert_eq!(
            document_file_name(&short),
            "https%3A%2F%2Fvalldaura.example%2Flots%2F1.jsonld"
        );
        let long = Iri::parse(format!("https://x.example/{}", "a".repeat(200)).as_str()).unwrap();
        let name = document_file_name(&long);
        assert!(
            name.starts_with("sha256-") && name.len() == 7 + 64 + 7,
            "{name}"
        );
        assert!(document_file_name(&long).len() <= MAX_FILE_NAME);
    }

    #[test]
    fn an_existing_directory_is_replaced_only_when_it_holds_an_export() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("snapshot");
        assert_eq!(plan(&out, false).unwrap().existing, Existing::Nothing);
        fs::create_dir(&out).unwrap();
        assert_eq!(plan(&out, false).unwrap().existing, Existing::Empty);
        fs::write(out.join("notes.txt"), "mine").unwrap();
        assert!(plan(&out, true).is_err());
        fs::remove_file(out.join("notes.txt")).unwrap();
        fs::write(
            out.join("manifest.json"),
            format!("{{\"format\":\"{FORMAT}\"}}"),
        )
        .unwrap();
        assert!(plan(&out, false).is_err());
        assert_eq!(plan(&out, true).unwrap().existing, Existing::Export);
        fs::create_dir(dir.path().join("snapshot.partial")).unwrap();
        assert!(plan(&out, true).is_err(), "a foreign .partial is kept");
    }
}
