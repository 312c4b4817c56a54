//! The report's `index.html`: one self-contained page (inline CSS, no
//! scripts) that shows the pictures and a metrics table per section.

use crate::Result;
use crate::io::atomic::write_atomic_bytes as write_atomic;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// A picture shown in a section.
#[derive(Clone, Debug)]
pub struct Image {
    /// File name relative to the report directory, e.g. `loss.png`.
    pub file: String,
    /// Caption under the picture.
    pub caption: String,
}

/// A table of strings; cells that parse as numbers are right-aligned,
/// unless the table is `plain`.
#[derive(Clone, Debug, Default)]
pub struct Table {
    /// Column headings.
    pub header: Vec<String>,
    /// Rows of cells (a row may be shorter or longer than the header).
    pub rows: Vec<Vec<String>>,
    /// Every cell left-aligned as text (a table of settings, whose numbers
    /// are not a column to compare).
    pub plain: bool,
}

/// One part of the report: a heading, then an optional paragraph, pictures,
/// table and preformatted text, in that order.
#[derive(Clone, Debug, Default)]
pub struct Section {
    /// The section heading.
    pub heading: String,
    /// A paragraph of plain text.
    pub text: Option<String>,
    /// A line of text before [`Section::pre`].
    pub pre_caption: Option<String>,
    /// Preformatted text (e.g. a configuration in JSON), shown as is.
    pub pre: Option<String>,
    /// Pictures, shown side by side when they fit.
    pub images: Vec<Image>,
    /// A table, e.g. of metrics per model.
    pub table: Option<Table>,
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1400px;\
padding:0 1em;color:#222;background:#fff}h1{font-size:1.6em}h2{font-size:1.25em;\
border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}figure{display:inline-block;\
margin:0 1em 1em 0;vertical-align:top}figure img{max-width:100%;border:1px solid #ddd;\
image-rendering:pixelated}figcaption{font-size:.9em;color:#555}table{border-collapse:collapse;\
margin:1em 0}th,td{border:1px solid #ccc;padding:.3em .7em}th{background:#f3f3f3}\
td{overflow-wrap:break-word}td.num{text-align:right;font-variant-numeric:tabular-nums}\
pre{background:#f6f6f6;border:1px solid #ddd;padding:.6em;overflow-x:auto;font-size:.85em}";

/// `s` with `& < > " '` replaced by HTML character references, safe in text
/// and in quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(ch),
        }
    }
    out
}

/// A relative file name as a URL path: bytes outside `A–Z a–z 0–9 - _ . ~ /`
/// are percent-encoded, so spaces, `#`, `?` and `%` in names still link.
fn url_path(file: &str) -> String {
    let mut out = String::with_capacity(file.len());
    for b in file.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Whether a table cell reads as a number (and so is right-aligned).
fn numeric(cell: &str) -> bool {
    let t = cell.trim().trim_end_matches('%');
    !t.is_empty() && t.parse::<f64>().is_ok()
}

/// The full HTML page for `title` and `sections`.
pub fn render(title: &str, sections: &[Section]) -> String {
    let mut h = String::new();
    let t = escape(title);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{t}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{t}</h1>\n"
    );
    for s in sections {
        let _ = writeln!(h, "<h2>{}</h2>", escape(&s.heading));
        if let Some(p) = &s.text {
            let _ = writeln!(h, "<p>{}</p>", escape(p));
        }
        for img in &s.images {
            let (src, cap) = (escape(&url_path(&img.file)), escape(&img.caption));
            let _ = writeln!(
                h,
                "<figure><a href=\"{src}\"><img src=\"{src}\" alt=\"{cap}\"></a>\
                 <figcaption>{cap}</figcaption></figure>"
            );
        }
        if let Some(tab) = &s.table {
            h.push_str("<table>\n<tr>");
            for c in &tab.header {
                let _ = write!(h, "<th>{}</th>", escape(c));
            }
            h.push_str("</tr>\n");
            for row in &tab.rows {
                h.push_str("<tr>");
                for c in row {
                    let class = if !tab.plain && numeric(c) {
                        " class=\"num\""
                    } else {
                        ""
                    };
                    let _ = write!(h, "<td{class}>{}</td>", escape(c));
                }
                h.push_str("</tr>\n");
            }
            h.push_str("</table>\n");
        }
        if let Some(c) = &s.pre_caption {
            let _ = writeln!(h, "<p>{}</p>", escape(c));
        }
        if let Some(p) = &s.pre {
            let _ = writeln!(h, "<pre>{}</pre>", escape(p));
        }
    }
    h.push_str("</body>\n</html>\n");
    h
}

/// Writes `dir/index.html` showing `sections` under `title` (all text
/// HTML-escaped), atomically, and returns its path. `dir` must exist.
///
/// # Errors
/// `Error::Io` naming the file if it cannot be written.
pub fn write_index(dir: impl AsRef<Path>, title: &str, sections: &[Section]) -> Result<PathBuf> {
    let path = dir.as_ref().join("index.html");
    write_atomic(&path, render(title, sections).as_bytes())?;
    Ok(path)
}

/// `secs` seconds after 1970-01-01 00:00 UTC as `YYYY-MM-DD HH:MM:SS UTC`
/// (the proleptic Gregorian calendar; days to a date by Howard Hinnant's
/// `civil_from_days`).
pub fn utc_timestamp(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::utc_timestamp;

    #[test]
    fn timestamps_match_known_dates() {
        assert_eq!(utc_timestamp(0), "1970-01-01 00:00:00 UTC");
        // 2000-02-29 (a leap day of a century leap year) 12:34:56.
        assert_eq!(utc_timestamp(951_827_696), "2000-02-29 12:34:56 UTC");
        // 2100-03-01, after the non-leap 2100-02-28.
        assert_eq!(utc_timestamp(4_107_542_400), "2100-03-01 00:00:00 UTC");
        assert_eq!(utc_timestamp(1_767_225_599), "2025-12-31 23:59:59 UTC");
    }
}
