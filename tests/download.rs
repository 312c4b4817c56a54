//! The downloader against a loopback HTTP/1.1 server: nothing here leaves
//! 127.0.0.1.
//!
//! The server serves generated IDX files (with checksums computed here), 404s,
//! corrupted and oversized bodies, and the real MNIST/Fashion-MNIST files when
//! they are on this machine, to check the built-in checksum tables end to end.
#![cfg(feature = "download")]

use sparse_ae::data::download::{self, Dataset, Limits, Source, fetch_with, verify};
use sparse_ae::data::idx::{self, IdxArray, IdxData};
use sparse_ae::data::mnist::{self, Split};
use sparse_ae::data::sha256::{digest, hex};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

// ---------------------------------------------------------------- server

/// One canned response.
#[derive(Clone)]
struct Reply {
    status: u16,
    body: Vec<u8>,
    /// Send `Content-Length`; without it the body ends when the connection closes.
    length_header: bool,
    /// Send the body a byte at a time, this long apart.
    trickle: Option<std::time::Duration>,
}

impl Reply {
    fn ok(body: Vec<u8>) -> Reply {
        Reply {
            status: 200,
            body,
            length_header: true,
            trickle: None,
        }
    }
}

/// A tiny HTTP/1.1 server on 127.0.0.1 that answers at most `max` requests
/// (one per connection) from a fixed table, 404 for anything else, then stops.
struct Server {
    addr: SocketAddr,
    hits: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start(routes: HashMap<String, Reply>, max: usize) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (h, s) = (hits.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for _ in 0..max {
                let Ok((stream, _)) = listener.accept() else {
                    return;
                };
                if s.load(Ordering::SeqCst) {
                    return;
                }
                serve(stream, &routes, &h);
            }
        });
        Server {
            addr,
            hits,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    fn hits(&self) -> Vec<String> {
        self.hits.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept() if the thread still waits in it.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(stream: TcpStream, routes: &HashMap<String, Reply>, hits: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    // Skip the headers.
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) if line == "\r\n" || line == "\n" => break,
            Ok(_) => {}
        }
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .to_owned();
    hits.lock().unwrap().push(path.clone());
    let reply = routes.get(&path).cloned().unwrap_or(Reply {
        status: 404,
        body: b"not found".to_vec(),
        length_header: true,
        trickle: None,
    });
    let reason = if reply.status == 200 {
        "OK"
    } else {
        "Not Found"
    };
    let mut head = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n",
        reply.status
    );
    if reply.length_header {
        head.push_str(&format!("Content-Length: {}\r\n", reply.body.len()));
    }
    head.push_str("\r\n");
    let mut stream = reader.into_inner();
    let _ = stream.write_all(head.as_bytes());
    match reply.trickle {
        None => {
            let _ = stream.write_all(&reply.body);
        }
        Some(gap) => {
            for b in &reply.body {
                if stream
                    .write_all(&[*b])
                    .and_then(|()| stream.flush())
                    .is_err()
                {
                    break;
                }
                std::thread::sleep(gap);
            }
        }
    }
    let _ = stream.flush();
}

/// A loopback URL nobody listens on.
fn closed_port_url() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}/")
}

// ---------------------------------------------------------------- fixtures

/// A small MNIST-layout data set: `(file name, gzip bytes, raw IDX bytes)`.
fn fixture_files() -> Vec<(&'static str, Vec<u8>, Vec<u8>)> {
    let images = |n: usize, seed: usize| IdxArray {
        dims: vec![n, 4, 4],
        data: IdxData::U8((0..n * 16).map(|i| ((i * 37 + seed) % 256) as u8).collect()),
    };
    let labels = |n: usize| IdxArray {
        dims: vec![n],
        data: IdxData::U8((0..n).map(|i| (i % 10) as u8).collect()),
    };
    let arrays = [images(6, 1), labels(6), images(2, 5), labels(2)];
    download::FILES
        .iter()
        .zip(arrays)
        .map(|(name, a)| {
            (
                *name,
                idx::to_gz_bytes(&a).unwrap(),
                idx::to_bytes(&a).unwrap(),
            )
        })
        .collect()
}

/// A source with the fixture checksums and default limits.
fn fixture_source(mirrors: Vec<String>) -> Source {
    Source {
        mirrors,
        files: fixture_files()
            .iter()
            .map(|(n, _, raw)| ((*n).to_owned(), hex(&digest(raw))))
            .collect(),
        limits: Limits::default(),
        hint: "---> HINT: offline test hint".into(),
    }
}

fn routes(prefix: &str, files: &[(&str, Vec<u8>)]) -> HashMap<String, Reply> {
    files
        .iter()
        .map(|(n, b)| (format!("{prefix}{n}"), Reply::ok(b.clone())))
        .collect()
}

fn fixture_routes(prefix: &str) -> HashMap<String, Reply> {
    let files: Vec<(&str, Vec<u8>)> = fixture_files()
        .into_iter()
        .map(|(n, gz, _)| (n, gz))
        .collect();
    routes(prefix, &files)
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sparse-ae-dl-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|r| {
            r.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn no_progress() -> impl FnMut(&str, u64, Option<u64>) {
    |_: &str, _: u64, _: Option<u64>| {}
}

// ---------------------------------------------------------------- library

#[test]
fn fetches_verifies_and_does_not_fetch_again() {
    let server = Server::start(fixture_routes("/"), 16);
    let dir = temp_dir("ok");
    let source = fixture_source(vec![server.url()]);
    let mut done: Vec<(String, u64, Option<u64>)> = Vec::new();
    let got = fetch_with(&source, &dir, &mut |n, d, t| done.push((n.into(), d, t))).unwrap();
    assert_eq!(got, dir);
    let want: Vec<String> = download::FILES.iter().map(|f| format!("/{f}")).collect();
    assert_eq!(server.hits(), want);
    let mut names: Vec<String> = download::FILES.iter().map(|s| s.to_string()).collect();
    names.sort();
    assert_eq!(entries(&dir), names, "only the four files, no temporaries");
    for ((name, gz, _), (_, sha)) in fixture_files().iter().zip(&source.files) {
        assert_eq!(&std::fs::read(dir.join(name)).unwrap(), gz, "{name}");
        verify(&dir.join(name), sha, Limits::default()).unwrap();
        // Exactly one "complete" progress call per file, with the full size.
        let complete: Vec<_> = done
            .iter()
            .filter(|(n, d, t)| n == name && *t == Some(*d))
            .collect();
        assert_eq!(complete.len(), 1, "{name}: {done:?}");
        assert_eq!(complete[0].1, gz.len() as u64);
    }
    let train = mnist::load_split(&dir, Split::Train).unwrap();
    assert_eq!((train.n, train.rows, train.cols), (6, 4, 4));
    assert!(download::is_complete(&dir));

    // Present and verified: no request at all.
    fetch_with(&source, &dir, &mut no_progress()).unwrap();
    assert_eq!(server.hits().len(), 4);

    // A damaged cached file is fetched again, and only that one.
    std::fs::write(dir.join(download::FILES[2]), b"garbage").unwrap();
    fetch_with(&source, &dir, &mut no_progress()).unwrap();
    assert_eq!(
        server.hits()[4..],
        [format!("/{}", download::FILES[2])],
        "{:?}",
        server.hits()
    );
    verify(
        &dir.join(download::FILES[2]),
        &source.files[2].1,
        Limits::default(),
    )
    .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn falls_back_to_the_next_mirror() {
    let server = Server::start(fixture_routes("/b/"), 16);
    let dir = temp_dir("fallback");
    let source = fixture_source(vec![server.url() + "a/", server.url() + "b"]);
    fetch_with(&source, &dir, &mut no_progress()).unwrap();
    let want: Vec<String> = download::FILES
        .iter()
        .flat_map(|f| [format!("/a/{f}"), format!("/b/{f}")])
        .collect();
    assert_eq!(server.hits(), want);
    assert!(download::is_complete(&dir));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn every_mirror_failing_names_each_url_and_status() {
    let server = Server::start(HashMap::new(), 4);
    let dir = temp_dir("all404");
    let source = fixture_source(vec![server.url() + "a/", server.url() + "b/"]);
    let e = fetch_with(&source, &dir, &mut no_progress())
        .unwrap_err()
        .to_string();
    let f = download::FILES[0];
    for m in ["a", "b"] {
        let line = format!("{}{m}/{f}: HTTP status 404", server.url());
        assert!(e.contains(&line), "{e}");
    }
    assert!(e.contains("offline test hint"), "{e}");
    assert!(entries(&dir).is_empty(), "{:?}", entries(&dir));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn checksum_mismatch_leaves_no_file() {
    let files = fixture_files();
    // Valid gzip of different content: the first label file instead of the images.
    let wrong_raw = files[1].2.clone();
    let mut served: Vec<(&str, Vec<u8>)> =
        files.iter().map(|(n, gz, _)| (*n, gz.clone())).collect();
    served[0].1 = files[1].1.clone();
    let server = Server::start(routes("/", &served), 4);
    let dir = temp_dir("checksum");
    let source = fixture_source(vec![server.url()]);
    let e = fetch_with(&source, &dir, &mut no_progress())
        .unwrap_err()
        .to_string();
    let expected = &source.files[0].1;
    let got = hex(&digest(&wrong_raw));
    assert!(e.contains("checksum mismatch"), "{e}");
    assert!(
        e.contains(&format!("expected {expected}, got {got}")),
        "{e}"
    );
    assert!(
        e.contains(&format!("{}{}", server.url(), files[0].0)),
        "{e}"
    );
    assert!(entries(&dir).is_empty(), "{:?}", entries(&dir));
    assert_eq!(server.hits().len(), 1, "stops at the first file that fails");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_body_that_is_not_gzip_is_rejected() {
    let mut served: Vec<(&str, Vec<u8>)> = fixture_files()
        .into_iter()
        .map(|(n, gz, _)| (n, gz))
        .collect();
    served[0].1 = b"<html>maintenance</html>".to_vec();
    let server = Server::start(routes("/", &served), 4);
    let dir = temp_dir("notgz");
    let e = fetch_with(
        &fixture_source(vec![server.url()]),
        &dir,
        &mut no_progress(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("not a valid gzip file"), "{e}");
    assert!(entries(&dir).is_empty(), "{:?}", entries(&dir));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn size_caps_stop_big_downloads_and_gzip_bombs() {
    let files = fixture_files();
    let big = files[0].1.clone();
    let cap = big.len() as u64 - 1;
    let mut routes = fixture_routes("/len/");
    let mut no_len = fixture_routes("/nolen/");
    for r in no_len.values_mut() {
        r.length_header = false;
    }
    routes.extend(no_len);
    // 10 MB of zeros gzip to about 10 kB.
    let bomb = idx::to_gz_bytes(&IdxArray {
        dims: vec![10_000_000],
        data: IdxData::U8(vec![0; 10_000_000]),
    })
    .unwrap();
    assert!(bomb.len() < 100_000);
    routes.insert(format!("/bomb/{}", files[0].0), Reply::ok(bomb));
    let server = Server::start(routes, 8);

    let cases = [
        (
            "len",
            Limits {
                max_download: cap,
                max_decompressed: 1 << 30,
                ..Limits::default()
            },
            format!(
                "Content-Length {} bytes is over the size cap of {cap} bytes",
                big.len()
            ),
        ),
        (
            "nolen",
            Limits {
                max_download: cap,
                max_decompressed: 1 << 30,
                ..Limits::default()
            },
            format!("more than the size cap of {cap} bytes"),
        ),
        (
            "bomb",
            Limits {
                max_download: 1 << 30,
                max_decompressed: 1_000_000,
                ..Limits::default()
            },
            "decompressed content is over the size cap of 1000000 bytes".to_owned(),
        ),
    ];
    for (prefix, limits, want) in cases {
        let dir = temp_dir(&format!("cap-{prefix}"));
        let mut source = fixture_source(vec![format!("{}{prefix}/", server.url())]);
        source.limits = limits;
        let e = fetch_with(&source, &dir, &mut no_progress())
            .unwrap_err()
            .to_string();
        assert!(e.contains(&want), "{prefix}: {e}");
        assert!(e.contains(&format!("{prefix}/{}", files[0].0)), "{e}");
        assert!(entries(&dir).is_empty(), "{prefix}: {:?}", entries(&dir));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// A mirror that trickles its body (a byte every 50 ms, each read in
/// time) is given up once a window passes with too few bytes, naming the
/// URL and the stall, and leaves no file: it kept `download` waiting until
/// it was killed.
#[test]
fn a_mirror_that_trickles_is_given_up() {
    let files = fixture_files();
    let mut routes = HashMap::new();
    let (name, gz, _) = &files[0];
    routes.insert(
        format!("/slow/{name}"),
        Reply {
            trickle: Some(std::time::Duration::from_millis(50)),
            ..Reply::ok(gz.clone())
        },
    );
    let server = Server::start(routes, 4);
    let dir = temp_dir("trickle");
    let mut source = fixture_source(vec![format!("{}slow/", server.url())]);
    source.limits = Limits {
        stall_bytes: 1000,
        stall_window: std::time::Duration::from_millis(500),
        ..Limits::default()
    };
    let start = std::time::Instant::now();
    let e = fetch_with(&source, &dir, &mut no_progress())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("stalled") && e.contains(&format!("slow/{name}")),
        "{e}"
    );
    assert!(start.elapsed().as_secs() < 30, "{:?}", start.elapsed());
    assert!(entries(&dir).is_empty(), "{:?}", entries(&dir));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unreachable_mirror_says_how_to_get_the_data_offline() {
    let url = closed_port_url();
    for dataset in Dataset::ALL {
        let dir = temp_dir(&format!("offline-{dataset}"));
        let e = fetch_with(
            &dataset.source_with(vec![url.clone()]),
            &dir,
            &mut no_progress(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains(&format!("{url}{}: ", download::FILES[0])), "{e}");
        assert!(e.contains("--data DIR"), "{e}");
        assert_eq!(
            e.contains("apt-get install dataset-fashion-mnist"),
            dataset == Dataset::FashionMnist,
            "{e}"
        );
        assert!(entries(&dir).is_empty(), "{:?}", entries(&dir));
        // The cache directories a failed download made are taken away
        // again (they were left empty); those that were there stay.
        let nested = dir.join("cache/sparse-ae").join(dataset.name());
        let source = dataset.source_with(vec![url.clone()]);
        assert!(fetch_with(&source, &nested, &mut no_progress()).is_err());
        assert!(entries(&dir).is_empty(), "{:?}", entries(&dir));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

// ---------------------------------------------------------------- real data

/// The four real files of a data set if they are on this machine.
fn real_files(dir: &Path) -> Option<Vec<(&'static str, Vec<u8>)>> {
    download::FILES
        .iter()
        .map(|f| std::fs::read(dir.join(f)).ok().map(|b| (*f, b)))
        .collect()
}

fn real_mnist_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/datasets/mnist"
    ))
}

#[test]
fn real_files_match_the_built_in_checksums() {
    let sets = [
        (Dataset::Mnist, real_mnist_dir()),
        (
            Dataset::FashionMnist,
            PathBuf::from(download::FASHION_SYSTEM_DIR),
        ),
    ];
    for (dataset, from) in sets {
        let Some(files) = real_files(&from) else {
            println!(
                "skipping {dataset}: its files are not in {}",
                from.display()
            );
            continue;
        };
        let server = Server::start(routes("/", &files), 4);
        let dir = temp_dir(&format!("real-{dataset}"));
        fetch_with(
            &dataset.source_with(vec![server.url()]),
            &dir,
            &mut no_progress(),
        )
        .unwrap();
        assert_eq!(server.hits().len(), 4);
        let test = mnist::load_split(&dir, Split::Test).unwrap();
        assert_eq!((test.n, test.rows, test.cols), (10_000, 28, 28));
        // The other data set's table rejects these files.
        let other = Dataset::ALL.into_iter().find(|d| *d != dataset).unwrap();
        let e = verify(
            &dir.join(download::FILES[3]),
            other.checksums()[3].1,
            Limits::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("checksum mismatch"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

// ---------------------------------------------------------------- CLI

fn cli(cache: &Path, mirror: &str, cwd: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sparse-ae"));
    c.current_dir(cwd)
        .env("SPARSE_AE_CACHE", cache)
        .env("SPARSE_AE_MIRROR", mirror)
        .env_remove("SPARSE_AE_DATA");
    c
}

#[test]
fn cli_downloads_then_trains_from_the_cache() {
    let Some(files) = real_files(&real_mnist_dir()) else {
        println!("skipping: MNIST is not in {}", real_mnist_dir().display());
        return;
    };
    let server = Server::start(routes("/", &files), 8);
    let work = temp_dir("cli-real");
    let cache = work.join("cache");

    let out = cli(&cache, &server.url(), &work)
        .args(["download", "--dataset", "mnist"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        cache.join("mnist").display().to_string()
    );
    for f in download::FILES {
        assert!(stderr.contains(f), "progress names {f}: {stderr}");
    }
    assert_eq!(server.hits().len(), 4);

    // Found in the cache: no request (the mirror is closed).
    let train = |cache: &Path, mirror: &str, extra: &[&str]| {
        let mut c = cli(cache, mirror, &work);
        c.args([
            "train",
            "--preset",
            "shallow",
            "--dataset",
            "mnist",
            "--steps",
            "2",
        ])
        .args(["--limit", "512", "--quiet", "-o"])
        .arg(work.join("model.safetensors"))
        .args(extra);
        c.output().unwrap()
    };
    let out = train(&cache, &closed_port_url(), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // --download fills an empty cache first.
    let cache2 = work.join("cache2");
    let out = train(&cache2, &server.url(), &["--download"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(download::is_complete(&cache2.join("mnist")));
    assert_eq!(server.hits().len(), 8);
    std::fs::remove_dir_all(&work).unwrap();
}

#[test]
fn cli_without_data_says_how_to_get_it() {
    let work = temp_dir("cli-missing");
    let cache = work.join("cache");
    let out = cli(&cache, &closed_port_url(), &work)
        .args([
            "train",
            "--preset",
            "shallow",
            "--dataset",
            "mnist",
            "--steps",
            "1",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("mnist not found"), "{stderr}");
    assert!(
        stderr.contains(&cache.join("mnist").display().to_string()),
        "{stderr}"
    );
    assert!(
        stderr.contains("sparse-ae download --dataset mnist"),
        "{stderr}"
    );
    assert!(stderr.contains("--data DIR"), "{stderr}");
    assert!(
        !cache.join("mnist").exists(),
        "nothing fetched without --download"
    );
    std::fs::remove_dir_all(&work).unwrap();
}

#[test]
fn cli_download_from_an_unreachable_mirror_fails_with_the_hint() {
    let work = temp_dir("cli-offline");
    let cache = work.join("cache");
    let url = closed_port_url();
    let out = cli(&cache, &url, &work)
        .args(["download", "--dataset", "fashion-mnist"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("{url}{}", download::FILES[0])),
        "{stderr}"
    );
    assert!(
        stderr.contains("apt-get install dataset-fashion-mnist"),
        "{stderr}"
    );
    assert!(stderr.contains("--data DIR"), "{stderr}");
    assert!(entries(&cache.join("fashion-mnist")).is_empty());
    std::fs::remove_dir_all(&work).unwrap();
}
