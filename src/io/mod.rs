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
    let _ = write_whole(&mut std::io::stderr(), format_args!("{args}\n"));
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

    /// Nothing in the crate's sources writes to stderr but through
    /// [`super::write_whole`]: no `eprintln!`, `eprint!` or `write!` to
    /// stderr in pieces.
    #[test]
    fn stderr_is_written_whole_everywhere() {
        fn walk(dir: &std::path::Path, found: &mut Vec<String>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(&p, found);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    let text = std::fs::read_to_string(&p).unwrap();
                    // Spelt in parts so that this test does not find itself.
                    let banned = [
                        ["eprint", "ln!("].concat(),
                        ["eprint", "!("].concat(),
                        ["std::io::stderr()", ","].concat(),
                    ];
                    for (i, line) in text.lines().enumerate() {
                        if banned.iter().any(|b| line.contains(b.as_str()))
                            && !line.contains("write_whole(")
                        {
                            found.push(format!("{}:{}: {}", p.display(), i + 1, line.trim()));
                        }
                    }
                }
            }
        }
        let mut found = Vec::new();
        walk(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut found,
        );
        assert!(
            found.is_empty(),
            "stderr written in pieces:\n{}",
            found.join("\n")
        );
    }
}
