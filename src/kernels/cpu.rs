//! What the running CPU is: its model name and its data-cache sizes per core,
//! read once, for the kernels' tuning and for reports that name the machine a
//! figure was measured on.
//!
//! On Linux the sizes come from sysfs (`/sys/devices/system/cpu/cpu0/cache`,
//! which the kernel fills from CPUID leaf 4 on Intel and 0x8000001D on AMD)
//! and the model from `/proc/cpuinfo`; elsewhere, or when a file is missing,
//! each unknown size is `None` and the tuning falls back to its defaults.

use std::path::Path;
use std::sync::OnceLock;

/// The running CPU as far as the kernels care.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuInfo {
    /// The model name (`/proc/cpuinfo`'s "model name"), or the target
    /// architecture when it is unknown.
    pub model: String,
    /// The vendor string (x86 `vendor_id`: `GenuineIntel`, `AuthenticAMD`),
    /// when known.
    pub vendor: Option<String>,
    /// Family and model numbers (x86 `cpu family` / `model`), when known.
    pub family_model: Option<(u32, u32)>,
    /// Level-1 data cache per core, in bytes.
    pub l1d: Option<usize>,
    /// Level-2 cache per core, in bytes.
    pub l2: Option<usize>,
    /// Last-level (L3) cache, in bytes, as shared by the cores that share it.
    pub l3: Option<usize>,
}

impl CpuInfo {
    /// The running CPU, read on first use.
    pub fn get() -> &'static CpuInfo {
        static INFO: OnceLock<CpuInfo> = OnceLock::new();
        INFO.get_or_init(|| CpuInfo::read(Path::new("/")))
    }

    /// Reads the description under `root` (`/` for this machine; tests pass a
    /// directory laid out like sysfs and procfs).
    pub fn read(root: &Path) -> CpuInfo {
        let cpuinfo = std::fs::read_to_string(root.join("proc/cpuinfo")).unwrap_or_default();
        let field = |key: &str| {
            cpuinfo.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim() == key).then(|| v.trim().to_string())
            })
        };
        let model = field("model name")
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| std::env::consts::ARCH.to_string());
        let family_model = field("cpu family")
            .and_then(|f| f.parse().ok())
            .zip(field("model").and_then(|m| m.parse().ok()));
        let vendor = field("vendor_id").filter(|v| !v.is_empty());
        let mut info = CpuInfo {
            model,
            vendor,
            family_model,
            l1d: None,
            l2: None,
            l3: None,
        };
        let dir = root.join("sys/devices/system/cpu/cpu0/cache");
        for index in 0..16 {
            let d = dir.join(format!("index{index}"));
            let read = |name: &str| std::fs::read_to_string(d.join(name)).ok();
            let (Some(level), Some(kind), Some(size)) = (read("level"), read("type"), read("size"))
            else {
                continue;
            };
            let Some(bytes) = parse_size(&size) else {
                continue;
            };
            match (level.trim(), kind.trim()) {
                ("1", "Data" | "Unified") => info.l1d = Some(bytes),
                ("2", "Data" | "Unified") => info.l2 = Some(bytes),
                ("3", "Data" | "Unified") => info.l3 = Some(bytes),
                _ => {}
            }
        }
        info
    }

    /// Whether the SIMD Adam update divides by `√v + ε`, as the scalar path
    /// does, rather than multiplying by a Newton-refined reciprocal
    /// ([`crate::kernels::AdamHyper::divide`]): on AMD Zen (family 0x17 on),
    /// whose divider keeps up with the update's other work while the
    /// reciprocal's five extra operations compete with it for the two
    /// multiply pipes. Measured on Zen 4 (`cargo bench --bench kernels --
    /// adam_step`, 4,096 values in L1, two runs): dividing took 1.50–1.53 µs
    /// against 2.14–2.57 µs on the AVX2 path and 1.17–1.28 µs against
    /// 1.45–1.47 µs on AVX-512. On Intel the
    /// divider is shared with `√` and a 512-bit division issues once per 10
    /// cycles (Ice Lake), so there the reciprocal stays.
    pub fn adam_divides(&self) -> bool {
        self.vendor.as_deref() == Some("AuthenticAMD")
            && self.family_model.is_some_and(|(family, _)| family >= 0x17)
    }

    /// One line for reports: `AMD EPYC (family 25 model 17), L1d 32 KiB, L2 1 MiB, L3 32 MiB`.
    pub fn summary(&self) -> String {
        let mut s = self.model.clone();
        if let Some((f, m)) = self.family_model {
            s.push_str(&format!(" (family {f} model {m})"));
        }
        for (name, size) in [("L1d", self.l1d), ("L2", self.l2), ("L3", self.l3)] {
            match size {
                Some(b) => s.push_str(&format!(", {name} {}", human(b))),
                None => s.push_str(&format!(", {name} unknown")),
            }
        }
        s
    }
}

/// Parses a sysfs cache size such as `32K`, `1024K`, `32M` or `512`.
fn parse_size(text: &str) -> Option<usize> {
    let t = text.trim();
    let (digits, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => t.split_at(i),
        None => (t, ""),
    };
    let n: usize = digits.parse().ok()?;
    let scale = match unit.trim() {
        "" => 1,
        "K" | "KB" | "KiB" => 1 << 10,
        "M" | "MB" | "MiB" => 1 << 20,
        "G" | "GB" | "GiB" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(scale).filter(|&b| b > 0)
}

/// `32 KiB`, `1 MiB`, `1.25 MiB`.
fn human(bytes: usize) -> String {
    if bytes >= 1 << 20 {
        let m = bytes as f64 / f64::from(1u32 << 20);
        format!("{} MiB", trim(m))
    } else {
        format!("{} KiB", trim(bytes as f64 / 1024.0))
    }
}

fn trim(x: f64) -> String {
    let s = format!("{x:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("32K\n"), Some(32 << 10));
        assert_eq!(parse_size("1280K"), Some(1280 << 10));
        assert_eq!(parse_size("32M"), Some(32 << 20));
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("0K"), None);
        assert_eq!(parse_size("12Q"), None);
        assert_eq!(parse_size(""), None);
        assert_eq!(parse_size("99999999999999999999K"), None);
    }

    #[test]
    fn reads_a_sysfs_tree() {
        let root = std::env::temp_dir().join(format!("sparse-ae-cpu-{}", std::process::id()));
        let cache = root.join("sys/devices/system/cpu/cpu0/cache");
        let entries = [
            ("1", "Data", "48K"),
            ("1", "Instruction", "32K"),
            ("2", "Unified", "1280K"),
            ("3", "Unified", "54M"),
        ];
        for (i, (level, kind, size)) in entries.iter().enumerate() {
            let d = cache.join(format!("index{i}"));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("level"), format!("{level}\n")).unwrap();
            std::fs::write(d.join("type"), format!("{kind}\n")).unwrap();
            std::fs::write(d.join("size"), format!("{size}\n")).unwrap();
        }
        std::fs::create_dir_all(root.join("proc")).unwrap();
        std::fs::write(
            root.join("proc/cpuinfo"),
            "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 106\nmodel name\t: Intel Xeon\n",
        )
        .unwrap();
        let info = CpuInfo::read(&root);
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(info.model, "Intel Xeon");
        assert_eq!(info.family_model, Some((6, 106)));
        assert_eq!(info.vendor.as_deref(), Some("GenuineIntel"));
        assert!(!info.adam_divides());
        assert_eq!(info.l1d, Some(48 << 10));
        assert_eq!(info.l2, Some(1280 << 10));
        assert_eq!(info.l3, Some(54 << 20));
        assert_eq!(
            info.summary(),
            "Intel Xeon (family 6 model 106), L1d 48 KiB, L2 1.25 MiB, L3 54 MiB"
        );
    }

    /// Adam divides on AMD Zen only: by vendor and family, not by model name.
    #[test]
    fn adam_divides_on_amd_zen() {
        let with = |vendor: &str, family: u32| {
            let root = std::env::temp_dir().join(format!(
                "sparse-ae-cpu-{}-{vendor}-{family}",
                std::process::id()
            ));
            std::fs::create_dir_all(root.join("proc")).unwrap();
            std::fs::write(
                root.join("proc/cpuinfo"),
                format!("vendor_id\t: {vendor}\ncpu family\t: {family}\nmodel\t\t: 1\nmodel name\t: AMD EPYC\n"),
            )
            .unwrap();
            let info = CpuInfo::read(&root);
            std::fs::remove_dir_all(&root).unwrap();
            info.adam_divides()
        };
        assert!(with("AuthenticAMD", 25));
        assert!(with("AuthenticAMD", 26));
        assert!(with("AuthenticAMD", 23));
        assert!(!with("AuthenticAMD", 21));
        assert!(!with("GenuineIntel", 6));
        assert!(!with("GenuineIntel", 25));
    }

    #[test]
    fn missing_files_leave_sizes_unknown() {
        let info = CpuInfo::read(Path::new("/nonexistent-root-for-cpu-info"));
        assert_eq!(info.model, std::env::consts::ARCH);
        assert_eq!((info.l1d, info.l2, info.l3), (None, None, None));
        assert!(!info.adam_divides());
        assert!(info.summary().contains("L2 unknown"));
    }
}
