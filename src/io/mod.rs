//! Reading and writing the project's own files: strict JSON, safetensors
//! models and checkpoints, capped reads of input files, and crash-safe
//! atomic replacement of files.

pub mod atomic;
#[doc(hidden)]
pub mod fuzz_bodies;
pub mod half;
pub mod interop;
pub mod json;
pub mod model_file;
pub mod read;
pub mod safetensors;

/// Writes the formatted `args` to `w` in one `write_all`: a line that two
/// processes print into one pipe at once (the ranks of a job sharing a
/// stderr) comes out whole, as a pipe keeps a write of up to `PIPE_BUF`
/// (4096) bytes together, where `write!` hands the writer each piece of the
/// format by itself.
///
/// # Errors
/// The writer's error.
pub fn write_whole(w: &mut impl std::io::Write, args: std::fmt::Arguments) -> std::io::Result<()> {
    w.write_all(std::fmt::format(args).as_bytes())
}

/// Prints `args` and a newline on stderr in one write ([`write_whole`]),
/// ignoring a failed write: there is nowhere left to report it.
pub fn warn(args: std::fmt::Arguments) {
    warn_part(format_args!("{args}\n"));
}

/// Prints `args` on stderr in one write, with no newline (a line finished
/// by a later write, or a progress line redrawn in place), ignoring a
/// failed write. With [`warn`], the only writer of stderr in the crate.
pub fn warn_part(args: std::fmt::Arguments) {
    let _ = write_whole(&mut std::io::stderr(), args);
}

/// The FNV-1a (64-bit) offset basis: [`fnv1a`]'s start.
pub const FNV1A_START: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a (64-bit) of `bytes` continuing from `h` ([`FNV1A_START`] for a
/// fresh hash): fingerprints that tell files and parameters apart, not a
/// guard against tampering.
pub fn fnv1a(h: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(h, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::write_whole;
    use std::io::Write;

    /// A writer that keeps each write it is handed.
    struct Calls(Vec<Vec<u8>>);

    impl Write for Calls {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.push(b.to_vec());
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A line of several pieces reaches the writer as one write, where
    /// `writeln!` hands over its pieces one by one (the ranks of a job
    /// interleaved theirs on a shared stderr).
    #[test]
    fn a_formatted_line_is_one_write() {
        let (rank, ranks, bytes) = (1, 2, 17280);
        let mut c = Calls(Vec::new());
        write_whole(
            &mut c,
            format_args!("rank {rank} of {ranks}: read {bytes} bytes of data\n"),
        )
        .unwrap();
        assert_eq!(c.0, [b"rank 1 of 2: read 17280 bytes of data\n".to_vec()]);
        let mut pieces = Calls(Vec::new());
        writeln!(pieces, "rank {rank} of {ranks}: read {bytes} bytes of data").unwrap();
        assert!(pieces.0.len() > 1, "{:?}", pieces.0);
    }

    /// Where `text` writes to stderr other than through [`super::warn`] and
    /// [`super::warn_part`]: a call of `eprint!` or `eprintln!`, a name of
    /// the `Stderr` types, or a `stderr()` handle used for anything but
    /// `is_terminal()` and `flush()` (a handle that is written, locked or
    /// bound to a name). Byte offsets of the finds.
    fn stderr_writes(text: &str) -> Vec<usize> {
        // Spelt in parts so that this file's own text is not found.
        let (eprint, handle, ty) = (
            ["eprint", "!("].concat(),
            ["stderr", "()"].concat(),
            ["Std", "err"].concat(),
        );
        let mut found = Vec::new();
        for (at, _) in text.match_indices("eprint") {
            let rest = &text[at..];
            if rest.starts_with(&eprint) || rest.starts_with("eprintln!(") {
                found.push(at);
            }
        }
        found.extend(text.match_indices(&ty).map(|(at, _)| at));
        for (at, _) in text.match_indices(&handle) {
            let rest = text[at + handle.len()..].trim_start();
            if !(rest.starts_with(".is_terminal()") || rest.starts_with(".flush()")) {
                found.push(at);
            }
        }
        found.sort_unstable();
        found
    }

    /// The rule finds every way of writing stderr in pieces that the crate
    /// once had or could have, wherever rustfmt breaks the lines.
    #[test]
    fn the_stderr_rule_finds_writes_in_pieces() {
        let h = ["stderr", "()"].concat();
        let e = ["eprint", "ln!"].concat();
        let written = [
            format!("{e}(\"x {{}}\", 1);"),
            format!("let _ = writeln!(std::io::{h}, \"x\");"),
            format!("let _ = writeln!(\n    std::io::{h}.lock(),\n    \"x\"\n);"),
            format!("let mut err = std::io::{h};\nlet _ = writeln!(err, \"x\");"),
            format!(
                "let _ = sparse_ae::io::write_whole(\n    &mut std::io::{h},\n    format_args!(\"x\"),\n);"
            ),
            format!("let err: std::io::{}err = std::io::{h};", "Std"),
        ];
        for w in written {
            assert!(!stderr_writes(&w).is_empty(), "not found: {w}");
        }
        let allowed = [
            format!("let tty = std::io::{h}.is_terminal();"),
            format!("let _ = std::io::{h}\n    .flush();"),
            "crate::io::warn(format_args!(\"x {}\", 1));".to_string(),
            format!("/// `{e}` that never panics"),
        ];
        for a in allowed {
            assert!(stderr_writes(&a).is_empty(), "found: {a}");
        }
    }

    /// Nothing in the crate's sources writes to stderr but [`super::warn`]
    /// and [`super::warn_part`] (each in one write): every other find of
    /// [`stderr_writes`] is an error, and here it finds exactly the one
    /// handle they write to.
    #[test]
    fn stderr_is_written_whole_everywhere() {
        fn walk(dir: &std::path::Path, found: &mut Vec<String>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(&p, found);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    let mut text = std::fs::read_to_string(&p).unwrap();
                    // This file's tests spell out what they look for.
                    if let Some(tests) = text.find("\n#[cfg(test)]\nmod tests {") {
                        text.truncate(tests);
                    }
                    for at in stderr_writes(&text) {
                        let line = text[..at].lines().count().max(1);
                        let shown = text[at..].lines().next().unwrap_or_default();
                        found.push(format!("{}:{line}: {}", p.display(), shown.trim()));
                    }
                }
            }
        }
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut found = Vec::new();
        walk(&src, &mut found);
        let own = src.join("io").join("mod.rs");
        let own = format!("{}:", own.display());
        let (here, elsewhere): (Vec<_>, Vec<_>) =
            found.into_iter().partition(|f| f.starts_with(&own));
        assert!(
            elsewhere.is_empty(),
            "stderr written other than by io::warn / io::warn_part:\n{}",
            elsewhere.join("\n")
        );
        assert_eq!(here.len(), 1, "{here:?}");
        assert!(here[0].ends_with(": stderr(), args);"), "{here:?}");
    }
}
