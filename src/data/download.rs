//! Fetching MNIST and Fashion-MNIST into a local cache, behind the
//! `download` feature.
//!
//! Each of the four standard files is fetched from the first mirror that
//! serves it, streamed into a temporary file while its gzip content is
//! inflated into a SHA-256 hasher, and renamed into place only if
//! `SHA-256(gunzip(file))` equals the known digest. Hashing the *decompressed*
//! bytes accepts any re-compression of the same data. Both the download and
//! the decompressed size are capped, so a hostile or broken mirror costs at
//! most the caps in disk and time, never memory. Files already present and
//! verified are not fetched again.
//!
//! `SPARSE_AE_MIRROR` replaces the built-in mirror list (a base URL, or several
//! separated by commas); `SPARSE_AE_CACHE` replaces the cache directory.

use std::ffi::OsString;
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use super::sha256::{Sha256, hex};
use crate::io::atomic::write_atomic;
use crate::{Error, Result};

/// Environment variable with mirror base URL(s) replacing the built-in ones.
pub const MIRROR_ENV: &str = "SPARSE_AE_MIRROR";
/// Environment variable naming the cache directory.
pub const CACHE_ENV: &str = "SPARSE_AE_CACHE";

/// The four files of an MNIST-layout data set, in download order.
pub const FILES: [&str; 4] = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
];

/// SHA-256 of the decompressed MNIST files.
const MNIST_SHA256: [(&str, &str); 4] = [
    (
        FILES[0],
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    ),
    (
        FILES[1],
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    ),
    (
        FILES[2],
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    ),
    (
        FILES[3],
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    ),
];

/// SHA-256 of the decompressed Fashion-MNIST files.
const FASHION_SHA256: [(&str, &str); 4] = [
    (
        FILES[0],
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    ),
    (
        FILES[1],
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    ),
    (
        FILES[2],
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    ),
    (
        FILES[3],
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    ),
];

/// Where Debian's `dataset-fashion-mnist` package installs the files.
pub const FASHION_SYSTEM_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// A data set that can be downloaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dataset {
    /// LeCun et al.'s handwritten digits (60 000 + 10 000 images of 28 × 28).
    Mnist,
    /// Zalando's clothing images, same layout as MNIST.
    FashionMnist,
}

impl Dataset {
    /// Every downloadable data set.
    pub const ALL: [Dataset; 2] = [Dataset::Mnist, Dataset::FashionMnist];

    /// The name used on the command line and as the cache subdirectory.
    pub fn name(self) -> &'static str {
        match self {
            Dataset::Mnist => "mnist",
            Dataset::FashionMnist => "fashion-mnist",
        }
    }

    /// The built-in mirrors, tried in order.
    pub fn mirrors(self) -> &'static [&'static str] {
        match self {
            Dataset::Mnist => &[
                "https://ossci-datasets.s3.amazonaws.com/mnist/",
                "https://storage.googleapis.com/cvdf-datasets/mnist/",
            ],
            Dataset::FashionMnist => {
                &["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"]
            }
        }
    }

    /// `(file name, SHA-256 of its decompressed content)` for each file.
    pub fn checksums(self) -> &'static [(&'static str, &'static str); 4] {
        match self {
            Dataset::Mnist => &MNIST_SHA256,
            Dataset::FashionMnist => &FASHION_SHA256,
        }
    }

    /// How to get the data without this download.
    pub fn offline_hint(self) -> String {
        let mut s = format!(
            "---> HINT: to use {} without downloading, copy {} into a directory and pass `--data DIR` (or set SPARSE_AE_DATA=DIR); {MIRROR_ENV}=URL picks another mirror",
            self.name(),
            FILES.join(", ")
        );
        if self == Dataset::FashionMnist {
            s.push_str(&format!(
                "; `apt-get install dataset-fashion-mnist` installs the files in {FASHION_SYSTEM_DIR}"
            ));
        }
        s
    }

    /// The real checksums and hint with the given mirrors (base URLs).
    pub fn source_with(self, mirrors: Vec<String>) -> Source {
        Source {
            mirrors,
            files: self
                .checksums()
                .iter()
                .map(|&(f, h)| (f.to_owned(), h.to_owned()))
                .collect(),
            limits: Limits::default(),
            hint: self.offline_hint(),
        }
    }

    /// [`source_with`](Dataset::source_with) the mirrors of `$SPARSE_AE_MIRROR`
    /// if it is set and not empty, else the built-in ones.
    pub fn source(self) -> Source {
        let from_env = std::env::var(MIRROR_ENV).ok().map(|v| split_mirrors(&v));
        let mirrors = match from_env {
            Some(m) if !m.is_empty() => m,
            _ => self.mirrors().iter().map(|s| (*s).to_owned()).collect(),
        };
        self.source_with(mirrors)
    }
}

impl fmt::Display for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Dataset {
    type Err = Error;

    /// `mnist` or `fashion-mnist` (also `fashion_mnist`, `fashion`), any case.
    fn from_str(s: &str) -> Result<Dataset> {
        match s.to_ascii_lowercase().as_str() {
            "mnist" => Ok(Dataset::Mnist),
            "fashion-mnist" | "fashion_mnist" | "fashion" => Ok(Dataset::FashionMnist),
            _ => Err(Error::config(
                "dataset",
                format!("unknown data set `{s}`; expected mnist or fashion-mnist"),
            )),
        }
    }
}

/// Base URLs from a comma- or space-separated list.
fn split_mirrors(v: &str) -> Vec<String> {
    v.split([',', ' ', '\t', '\n'])
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Size caps per file, and how slow a download may get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted download (compressed) in bytes.
    pub max_download: u64,
    /// Largest accepted decompressed content in bytes.
    pub max_decompressed: u64,
    /// A download that receives fewer than `stall_bytes` bytes in
    /// `stall_window` is given up (a mirror that trickles data would
    /// otherwise keep it waiting for ever: each read returns in time).
    pub stall_bytes: u64,
    /// See `stall_bytes`.
    pub stall_window: Duration,
}

impl Default for Limits {
    /// 100 MB each (the largest real file is 26 MB compressed, 47 MB
    /// inflated); at least 16 KiB a minute.
    fn default() -> Self {
        Limits {
            max_download: 100_000_000,
            max_decompressed: 100_000_000,
            stall_bytes: 16 << 10,
            stall_window: Duration::from_secs(60),
        }
    }
}

/// Where and what to fetch: the input of [`fetch_with`].
#[derive(Clone, Debug)]
pub struct Source {
    /// Base URLs tried in order; a file's URL is `base/<file name>`.
    pub mirrors: Vec<String>,
    /// `(file name, lower-case hex SHA-256 of its decompressed content)`.
    pub files: Vec<(String, String)>,
    /// Size caps per file.
    pub limits: Limits,
    /// Appended to the error when every mirror fails.
    pub hint: String,
}

/// Progress callback: `(file name, bytes received, Content-Length if known)`.
///
/// Called with 0 bytes when a response arrives, after every chunk, and
/// exactly once with `received == total` (total then always `Some`), when
/// the whole body has arrived. A failed attempt may stop short of that call.
pub type Progress<'a> = &'a mut dyn FnMut(&str, u64, Option<u64>);

/// The cache root: `$SPARSE_AE_CACHE`, else `$XDG_CACHE_HOME/sparse-ae`,
/// else `~/.cache/sparse-ae`.
///
/// # Errors
/// [`Error::Data`] if none of these can be determined.
pub fn cache_dir() -> Result<PathBuf> {
    cache_dir_from(|k| std::env::var_os(k), std::env::home_dir())
}

fn cache_dir_from(
    var: impl Fn(&str) -> Option<OsString>,
    home: Option<PathBuf>,
) -> Result<PathBuf> {
    let set = |k: &str| var(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(d) = set(CACHE_ENV) {
        return Ok(d);
    }
    if let Some(d) = set("XDG_CACHE_HOME").filter(|d| d.is_absolute()) {
        return Ok(d.join("sparse-ae"));
    }
    match home.filter(|h| !h.as_os_str().is_empty()) {
        Some(h) => Ok(h.join(".cache").join("sparse-ae")),
        None => Err(Error::Data {
            reason: format!(
                "cannot find a cache directory: neither {CACHE_ENV}, XDG_CACHE_HOME nor HOME is set\n---> HINT: set {CACHE_ENV}=DIR"
            ),
        }),
    }
}

/// True if `dir` holds all four [`FILES`] (unverified).
pub fn is_complete(dir: &Path) -> bool {
    FILES.iter().all(|f| dir.join(f).is_file())
}

/// Downloads `dataset` into `cache_dir/<name>/` from its mirrors (or
/// `$SPARSE_AE_MIRROR`) and returns that directory; see [`fetch_with`].
///
/// # Errors
/// As [`fetch_with`].
pub fn fetch(dataset: Dataset, cache_dir: &Path, progress: Progress<'_>) -> Result<PathBuf> {
    fetch_with(&dataset.source(), &cache_dir.join(dataset.name()), progress)
}

/// Makes `dir` hold every file of `source`, verified, and returns `dir`.
///
/// A file already in `dir` whose decompressed SHA-256 matches is kept without
/// any request; a mismatching one is deleted and fetched again. Each missing
/// file is tried on every mirror in order until one serves it within the
/// [`Limits`] and with the right checksum; a failed attempt leaves nothing in
/// `dir`, and a failed download takes away the directories it made (they
/// are empty then).
///
/// # Errors
/// [`Error::Data`] listing, per mirror, the URL and what went wrong (HTTP
/// status, connection error, size cap, checksum "expected … got …"), then
/// `source.hint`; [`Error::Io`] if `dir` cannot be created or a bad cached
/// file cannot be removed; [`Error::Config`] for a file name with a path in it.
pub fn fetch_with(source: &Source, dir: &Path, progress: Progress<'_>) -> Result<PathBuf> {
    for (name, _) in &source.files {
        if name.is_empty() || name.contains(['/', '\\']) || name == "." || name == ".." {
            return Err(Error::config(
                "download file",
                format!("`{name}` is not a plain file name"),
            ));
        }
    }
    // The directories made here, innermost first: a download that fails
    // takes them away again while they are empty.
    let made: Vec<PathBuf> = dir
        .ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
        .map(Path::to_path_buf)
        .collect();
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let got = fetch_into(source, dir, progress);
    if got.is_err() {
        for d in &made {
            // Only an empty one goes (remove_dir refuses any other).
            if std::fs::remove_dir(d).is_err() {
                break;
            }
        }
    }
    got
}

/// [`fetch_with`] into the existing directory `dir`.
fn fetch_into(source: &Source, dir: &Path, progress: Progress<'_>) -> Result<PathBuf> {
    let (mut agent, mut direct) = (None, None);
    for (name, sha) in &source.files {
        let path = dir.join(name);
        if path.is_file() {
            if verify(&path, sha, source.limits).is_ok() {
                continue;
            }
            std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
        }
        let mut failures = Vec::new();
        for base in &source.mirrors {
            let url = format!("{}/{name}", base.trim_end_matches('/'));
            let agent = if is_loopback(&url) {
                direct.get_or_insert_with(|| new_agent(false))
            } else {
                agent.get_or_insert_with(|| new_agent(true))
            };
            match download_one(agent, &url, &path, name, sha, source.limits, progress) {
                Ok(()) => break,
                Err(e) => failures.push(format!("  {e}")),
            }
        }
        if failures.len() == source.mirrors.len() {
            if failures.is_empty() {
                failures.push("  no mirror given".into());
            }
            return Err(Error::Data {
                reason: format!(
                    "could not download {name} into {}:\n{}\n{}",
                    dir.display(),
                    failures.join("\n"),
                    source.hint
                ),
            });
        }
    }
    Ok(dir.to_owned())
}

/// Checks that `SHA-256(gunzip(path))` is `expected` (lower-case hex).
///
/// # Errors
/// [`Error::Io`] if the file cannot be read; [`Error::Data`] naming the file
/// if it is not gzip, inflates beyond `limits.max_decompressed`, or its
/// checksum differs ("expected … got …").
pub fn verify(path: &Path, expected: &str, limits: Limits) -> Result<()> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let what = path.display().to_string();
    let mut dec = flate2::write::MultiGzDecoder::new(HashSink::new(limits.max_decompressed));
    let copied = io::copy(&mut io::BufReader::new(file), &mut dec);
    let ended = copied.and_then(|_| dec.try_finish());
    finish_check(&what, ended, dec.get_ref(), expected, limits)
}

/// True for `http(s)://` URLs on 127.0.0.0/8, `[::1]` or `localhost`, which no
/// proxy can reach on our behalf.
fn is_loopback(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    if let Some(v6) = host.strip_prefix('[') {
        let addr = v6.split(']').next().unwrap_or("");
        return addr.parse::<Ipv6Addr>().is_ok_and(|a| a.is_loopback());
    }
    let name = host.split(':').next().unwrap_or("");
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<Ipv4Addr>().is_ok_and(|a| a.is_loopback())
}

/// An HTTP agent with generous timeouts; `use_proxy` honours the usual
/// `HTTPS_PROXY`/`ALL_PROXY`/`NO_PROXY` variables.
fn new_agent(use_proxy: bool) -> ureq::Agent {
    let proxy = if use_proxy {
        ureq::Proxy::try_from_env()
    } else {
        None
    };
    ureq::Agent::config_builder()
        .proxy(proxy)
        .user_agent(concat!("sparse-ae/", env!("CARGO_PKG_VERSION")))
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .timeout_per_read(Some(Duration::from_secs(60)))
        .build()
        .new_agent()
}

/// Fetches one URL into `path` (atomically), verifying size caps and checksum.
fn download_one(
    agent: &ureq::Agent,
    url: &str,
    path: &Path,
    name: &str,
    expected: &str,
    limits: Limits,
    progress: Progress<'_>,
) -> Result<()> {
    let fail = |reason: String| Error::Data {
        reason: format!("{url}: {reason}"),
    };
    write_atomic(path, |w| {
        let resp = agent.get(url).call().map_err(|e| match e {
            ureq::Error::StatusCode(code) => fail(format!("HTTP status {code}")),
            e => fail(e.to_string()),
        })?;
        let total = resp.body().content_length();
        if let Some(t) = total
            && t > limits.max_download
        {
            return Err(fail(format!(
                "Content-Length {t} bytes is over the size cap of {} bytes",
                limits.max_download
            )));
        }
        let mut body = resp.into_body().into_reader();
        let mut dec = flate2::write::MultiGzDecoder::new(HashSink::new(limits.max_decompressed));
        let mut buf = vec![0u8; 1 << 16];
        let mut done = 0u64;
        // The bytes received since `window` began.
        let (mut window, mut window_start) = (0u64, std::time::Instant::now());
        let mut inflated = Ok(());
        if total != Some(0) {
            progress(name, 0, total);
        }
        loop {
            let n = match body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(fail(format!("reading failed after {done} bytes: {e}"))),
            };
            done += n as u64;
            window += n as u64;
            if window_start.elapsed() >= limits.stall_window {
                if window < limits.stall_bytes {
                    return Err(fail(format!(
                        "stalled: {window} bytes in the last {:.0} s (less than {} bytes), {done} bytes in all; try again or another mirror (SPARSE_AE_MIRROR)",
                        window_start.elapsed().as_secs_f64(),
                        limits.stall_bytes
                    )));
                }
                (window, window_start) = (0, std::time::Instant::now());
            }
            if done > limits.max_download {
                return Err(fail(format!(
                    "more than the size cap of {} bytes",
                    limits.max_download
                )));
            }
            w.write_all(&buf[..n]).map_err(|e| Error::io(path, e))?;
            if let Err(e) = dec.write_all(&buf[..n]) {
                inflated = Err(e);
                break;
            }
            if total != Some(done) {
                progress(name, done, total);
            }
        }
        if inflated.is_ok() {
            progress(name, done, Some(done));
        }
        let ended = inflated.and_then(|()| dec.try_finish());
        finish_check(url, ended, dec.get_ref(), expected, limits)
    })
}

/// Turns the end state of an inflate-and-hash pass into the verdict.
fn finish_check(
    what: &str,
    ended: io::Result<()>,
    sink: &HashSink,
    expected: &str,
    limits: Limits,
) -> Result<()> {
    let fail = |reason: String| Error::Data {
        reason: format!("{what}: {reason}"),
    };
    if sink.over_cap() {
        return Err(fail(format!(
            "decompressed content is over the size cap of {} bytes",
            limits.max_decompressed
        )));
    }
    if let Err(e) = ended {
        return Err(fail(format!("not a valid gzip file: {e}")));
    }
    let got = hex(&sink.hasher.clone().finish());
    if got.eq_ignore_ascii_case(expected) {
        Ok(())
    } else {
        Err(fail(format!(
            "checksum mismatch: SHA-256 of the decompressed content: expected {expected}, got {got}"
        )))
    }
}

/// A writer that hashes what it is given and refuses more than `cap` bytes.
struct HashSink {
    hasher: Sha256,
    len: u64,
    cap: u64,
}

impl HashSink {
    fn new(cap: u64) -> Self {
        HashSink {
            hasher: Sha256::new(),
            len: 0,
            cap,
        }
    }

    fn over_cap(&self) -> bool {
        self.len > self.cap
    }
}

impl Write for HashSink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.len = self.len.saturating_add(data.len() as u64);
        if self.over_cap() {
            return Err(io::Error::new(
                io::ErrorKind::FileTooLarge,
                "decompressed size cap exceeded",
            ));
        }
        self.hasher.update(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_dir_prefers_env_then_xdg_then_home() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| OsString::from(v))
            }
        };
        let home = Some(PathBuf::from("/home/u"));
        let all = env(&[(CACHE_ENV, "/c"), ("XDG_CACHE_HOME", "/x")]);
        assert_eq!(cache_dir_from(all, home.clone()).unwrap(), Path::new("/c"));
        let xdg = env(&[(CACHE_ENV, ""), ("XDG_CACHE_HOME", "/x")]);
        assert_eq!(
            cache_dir_from(xdg, home.clone()).unwrap(),
            Path::new("/x/sparse-ae")
        );
        // A relative XDG_CACHE_HOME is ignored, as the XDG spec says.
        let rel = env(&[("XDG_CACHE_HOME", "rel")]);
        assert_eq!(
            cache_dir_from(rel, home.clone()).unwrap(),
            Path::new("/home/u/.cache/sparse-ae")
        );
        let e = cache_dir_from(env(&[]), None).unwrap_err().to_string();
        assert!(e.contains(CACHE_ENV), "{e}");
    }

    #[test]
    fn names_and_mirror_lists() {
        for d in Dataset::ALL {
            assert_eq!(d.name().parse::<Dataset>().unwrap(), d);
            assert_eq!(d.checksums().map(|(f, _)| f), FILES);
            assert!(d.checksums().iter().all(|(_, h)| h.len() == 64));
        }
        assert!("kmnist".parse::<Dataset>().is_err());
        assert_eq!(
            split_mirrors(" http://a/, http://b ,,"),
            ["http://a/", "http://b"]
        );
        assert!(
            Dataset::FashionMnist
                .offline_hint()
                .contains("apt-get install dataset-fashion-mnist")
        );
        assert!(!Dataset::Mnist.offline_hint().contains("apt-get"));
    }

    #[test]
    fn loopback_urls_bypass_proxies() {
        for u in [
            "http://127.0.0.1:8080/a.gz",
            "http://127.1.2.3/",
            "http://localhost/x",
            "http://LOCALHOST:99/x",
            "http://u:p@127.0.0.1/x",
            "http://[::1]:5/x",
        ] {
            assert!(is_loopback(u), "{u}");
        }
        for u in [
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
            "http://localhost.example.com/",
            "http://10.0.0.1/127.0.0.1",
            "http://127.example.com/",
        ] {
            assert!(!is_loopback(u), "{u}");
        }
    }

    #[test]
    fn hash_sink_refuses_past_its_cap() {
        let mut s = HashSink::new(5);
        assert!(s.write_all(b"abcde").is_ok());
        let e = s.write_all(b"f").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::FileTooLarge);
        assert!(s.over_cap());
    }
}
