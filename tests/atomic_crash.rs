//! A process that dies while saving a model must leave the previous file
//! whole and loadable. The test binary runs itself as a child (the ignored
//! test `crash_child`) which starts saving a 16 MB safetensors file over an
//! existing one with `write_atomic` and dies 8 MB in, by `abort()` or by
//! SIGKILL from the parent. The temporary file it leaves has the target's
//! fixed temporary name, and the next save of that target removes it.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sparse_ae::io::atomic::write_atomic;
use sparse_ae::io::safetensors::{self, SafeTensors};

const CHILD_ENV: &str = "SPARSE_AE_ATOMIC_CRASH_CHILD";
const CRASH_AT: usize = 8 << 20;
const OLD: [f32; 6] = [1.0, -2.0, 3.5, 0.25, 5.0, -6.0];

/// Passes bytes through until `left` runs out, then flushes and dies.
struct DieMidway<'a> {
    inner: &'a mut dyn Write,
    left: usize,
    mode: String,
}

impl Write for DieMidway<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.left);
        self.inner.write_all(&buf[..n])?;
        self.left -= n;
        if self.left == 0 {
            self.inner.flush()?;
            if self.mode == "abort" {
                std::process::abort();
            }
            // The parent waits for this marker (libtest may print it after its own "test … " prefix).
            let mut out = std::io::stdout().lock();
            out.write_all(b"MIDWAY\n")?;
            out.flush()?;
            loop {
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[test]
#[ignore = "child process of the crash tests below, which run it"]
fn crash_child() {
    let spec = std::env::var(CHILD_ENV).expect("run only by the crash tests");
    let (mode, path) = spec.split_once(':').expect("mode:path");
    let path = Path::new(path);
    let big = vec![0.5f32; 4 << 20];
    let r = write_atomic(path, |w| {
        let mut w = DieMidway {
            inner: w,
            left: CRASH_AT,
            mode: mode.to_owned(),
        };
        safetensors::write_to(
            &mut w,
            &[("w", &[4 << 20], &big)],
            &[("version", "new")],
            path,
        )
    });
    panic!("the child should have died mid-write, got {r:?}");
}

fn crash_and_check(mode: &str) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("atomic-crash-{mode}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("model.safetensors");
    safetensors::write(&path, &[("w", &[2, 3], &OLD)], &[("version", "old")]).unwrap();

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, format!("{mode}:{}", path.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    if mode == "kill" {
        let out = BufReader::new(child.stdout.take().unwrap());
        let midway = out
            .lines()
            .map_while(Result::ok)
            .any(|l| l.ends_with("MIDWAY"));
        child.kill().unwrap();
        assert!(midway, "the child never reached the middle of its write");
    }
    let status = child.wait().unwrap();
    assert!(!status.success(), "the child exited normally: {status}");

    // The child really was mid-write: its temporary file holds ≥ 8 MB.
    let temps: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".model.safetensors.tmp")
        })
        .collect();
    assert_eq!(temps.len(), 1, "{temps:?}");
    assert_eq!(temps[0], dir.join(".model.safetensors.tmp"));
    assert!(std::fs::metadata(&temps[0]).unwrap().len() >= CRASH_AT as u64);

    // The old file is whole and loads with its old contents.
    let st = SafeTensors::read(&path).unwrap();
    assert_eq!(st.meta("version"), Some("old"));
    assert_eq!(st.get("w").unwrap().data, OLD);
    assert_eq!(st.get("w").unwrap().shape, [2, 3]);

    // The next save of the same target reuses the leftover and leaves nothing behind.
    safetensors::write(&path, &[("w", &[3], &OLD[..3])], &[("version", "next")]).unwrap();
    assert_eq!(
        SafeTensors::read(&path).unwrap().meta("version"),
        Some("next")
    );
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["model.safetensors"]);
}

#[test]
fn abort_mid_write_keeps_old_file() {
    crash_and_check("abort");
}

#[test]
fn sigkill_mid_write_keeps_old_file() {
    crash_and_check("kill");
}
