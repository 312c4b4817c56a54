//! `train --metrics FILE`: one row per epoch, as CSV (a header, then rows)
//! or JSON lines (`.jsonl`), added to what the file already holds.
//!
//! Each epoch's row is added atomically: the file's current content and the
//! new row are written to a temporary file beside it, which is renamed over
//! it ([`write_atomic`]). A failed or interrupted write (a full disk, a
//! killed process) leaves the previous file whole, never a row cut short.
//!
//! A run resumed from a checkpoint first removes the rows written after
//! the checkpoint's own ([`trim_after`]): the row of an epoch is written
//! before its checkpoint, so a run that died (or whose checkpoint save
//! failed) in between left a row its checkpoint does not cover, which the
//! resumed run writes again.
//!
//! A file already there must hold only whole rows as sparse-ae writes them:
//! a newline at the end, for CSV this version's header and every row with
//! its column count, for JSON lines one JSON object per line. Anything else
//! (a row cut short by an earlier interrupted write, a file from another
//! program or version) is refused before training, naming the line, rather
//! than appended to.

use sparse_ae::io::atomic::{write_atomic, write_atomic_bytes};
use sparse_ae::io::read::read_capped;
use sparse_ae::train::EpochMetrics;
use sparse_ae::{Error, Result};
use std::io;
use std::path::Path;

/// The largest metrics file added to (it is rewritten whole every epoch; a
/// row is a few hundred bytes, so this is about a million epochs).
const MAX_BYTES: u64 = 256 << 20;

/// Refuses a metrics file named with another extension than `.csv` or
/// `.jsonl` (or none, CSV): it got CSV rows under any name, and a `.json`
/// file of JSON lines is not the one JSON document other tools read there.
///
/// # Errors
/// [`Error::Config`] naming `--metrics`.
pub fn check_name(path: &Path) -> sparse_ae::Result<()> {
    crate::files::format_of(
        "--metrics",
        "--metrics",
        path,
        &[("csv", ()), ("jsonl", ())],
        (),
    )
}

/// Whether `path` gets JSON lines (.jsonl) rather than CSV.
pub fn is_json(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("jsonl"))
}

/// What a metrics file starts with (checked with the other outputs).
pub fn head(path: &Path) -> &'static [u8] {
    if is_json(path) { b"{" } else { b"epoch,step," }
}

/// The current content of the metrics file `path` (empty if there is none),
/// checked to be whole rows (see the module doc).
///
/// # Errors
/// [`Error::Io`] naming `path`: unreadable, over 256 MiB, or not whole
/// rows of the expected form, with the offending line.
pub fn existing(path: &Path) -> Result<Vec<u8>> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        _ => {}
    }
    let bytes = read_capped(path, MAX_BYTES, "--metrics file")?;
    check(&bytes, is_json(path)).map_err(|why| {
        Error::io(
            path,
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{why}; refusing to append to it (remove that line, or choose another --metrics file)"
                ),
            ),
        )
    })?;
    Ok(bytes)
}

/// Checks that `bytes` are whole metrics rows; the reason if not.
fn check(bytes: &[u8], json: bool) -> std::result::Result<(), String> {
    if bytes.is_empty() {
        return Ok(());
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|e| format!("is not UTF-8 text (byte {})", e.valid_up_to()))?;
    let lines: Vec<&str> = text.split_terminator('\n').collect();
    if !text.ends_with('\n') {
        return Err(format!(
            "line {} (the last) is incomplete: it does not end with a newline, as after a write cut short",
            lines.len()
        ));
    }
    if json {
        for (i, line) in lines.iter().enumerate() {
            let object =
                sparse_ae::io::json::parse(line.as_bytes()).is_ok_and(|v| v.as_object().is_some());
            if !object {
                return Err(format!(
                    "line {} is not a whole JSON object, as sparse-ae writes one per line",
                    i + 1
                ));
            }
        }
        return Ok(());
    }
    let header = EpochMetrics::CSV_HEADER;
    let columns = header.split(',').count();
    if lines[0] != header {
        return Err(format!(
            "its header (line 1, {} columns) is not the {columns}-column header this version of sparse-ae writes",
            lines[0].split(',').count()
        ));
    }
    for (i, line) in lines.iter().enumerate().skip(1) {
        let n = line.split(',').count();
        if n != columns {
            return Err(format!(
                "line {} has {n} columns where the header has {columns}, as after a row cut short",
                i + 1
            ));
        }
    }
    Ok(())
}

/// The line (without its newline) that [`append`] adds to `path` for
/// epoch `m`: a CSV row, or a JSON object for `.jsonl`/`.json`.
pub fn row(path: &Path, m: &EpochMetrics) -> String {
    if is_json(path) {
        m.json_line()
    } else {
        m.csv_row()
    }
}

/// Adds `row` (from [`row`]; after the header, for a new CSV file)
/// atomically: the file is either as before or has the whole new row.
///
/// # Errors
/// Those of [`existing`], and [`Error::Io`] naming `path` if writing fails
/// (the file then stays as it was).
pub fn append(path: &Path, row: &str) -> Result<()> {
    let old = existing(path)?;
    let mut text = String::new();
    if old.is_empty() && !is_json(path) {
        text.push_str(EpochMetrics::CSV_HEADER);
        text.push('\n');
    }
    text.push_str(row);
    text.push('\n');
    write_atomic(path, |w| {
        w.write_all(&old)
            .and_then(|()| w.write_all(text.as_bytes()))
            .map_err(|e| Error::io(path, e))
    })
}

/// What [`trim_after`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Trimmed {
    /// The file is empty or missing: nothing to compare.
    Empty,
    /// The checkpoint's row is not in the file (another file, or one
    /// edited since): the file is left as it is.
    NotFound,
    /// The checkpoint's row is the file's last occurrence of it; this many
    /// rows were removed: those after it, and with `with_last` it too.
    Dropped(usize),
}

/// For a run resumed from a checkpoint whose epoch wrote the row `last`
/// (the exact line, kept in the checkpoint): removes the rows after the
/// last occurrence of `last`, which the interrupted run wrote for epochs
/// past its last checkpoint (a row is written before the checkpoint of its
/// epoch), so the resumed run writes each of them once; with `with_last`
/// (a checkpoint taken inside an epoch, whose row the resumed run writes
/// again for the whole epoch) that row too. The file is rewritten
/// atomically, and only when there is something to remove.
///
/// # Errors
/// Those of [`existing`], and [`Error::Io`] naming `path` if writing fails
/// (the file then stays as it was).
pub fn trim_after(path: &Path, last: &str, with_last: bool) -> Result<Trimmed> {
    let old = existing(path)?;
    if old.is_empty() {
        return Ok(Trimmed::Empty);
    }
    // `existing` checked the file is UTF-8 text of whole lines.
    let text = String::from_utf8_lossy(&old);
    let lines: Vec<&str> = text.split_terminator('\n').collect();
    let Some(at) = lines.iter().rposition(|l| *l == last) else {
        return Ok(Trimmed::NotFound);
    };
    let kept = at + usize::from(!with_last);
    let dropped = lines.len() - kept;
    if dropped > 0 {
        let keep: usize = lines[..kept].iter().map(|l| l.len() + 1).sum();
        write_atomic_bytes(path, &old[..keep])?;
    }
    Ok(Trimmed::Dropped(dropped))
}

#[cfg(test)]
mod tests {
    use super::check;
    use sparse_ae::train::EpochMetrics;

    #[test]
    fn whole_rows_pass_and_cut_rows_are_named() {
        let header = EpochMetrics::CSV_HEADER;
        let cols = header.split(',').count();
        let row = vec!["0"; cols].join(",");
        let good = format!("{header}\n{row}\n{row}\n");
        assert_eq!(check(good.as_bytes(), false), Ok(()));
        assert_eq!(check(b"", false), Ok(()));
        let cut = &good[..good.len() - 4];
        assert!(check(cut.as_bytes(), false).unwrap_err().contains("line 3"));
        let short = format!("{header}\n0,1,2\n{row}\n");
        let e = check(short.as_bytes(), false).unwrap_err();
        assert!(e.contains("line 2 has 3 columns"), "{e}");
        let old = "epoch,step,train_loss\n1,10,0.5\n";
        assert!(check(old.as_bytes(), false).unwrap_err().contains("header"));

        assert_eq!(check(b"{\"epoch\":1}\n{\"epoch\":2}\n", true), Ok(()));
        let e = check(b"{\"epoch\":1}\n{\"epo", true).unwrap_err();
        assert!(e.contains("line 2 (the last) is incomplete"), "{e}");
        let e = check(b"{\"epoch\":1}\n{\"epo{\"epoch\":2}\n", true).unwrap_err();
        assert!(e.contains("line 2 is not a whole JSON object"), "{e}");
    }
}
