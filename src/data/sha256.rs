//! SHA-256, streaming, used to verify downloaded data sets: a thin layer over
//! the RustCrypto `sha2` crate (maintained, and fast: it uses the CPU's SHA
//! extensions where present), with the small API the downloader needs.

use sha2::Digest;

/// A streaming SHA-256 hasher: [`update`](Sha256::update) any number of
/// times, then [`finish`](Sha256::finish).
#[derive(Clone, Debug, Default)]
pub struct Sha256(sha2::Sha256);

impl Sha256 {
    /// A hasher over the empty message.
    pub fn new() -> Self {
        Sha256(sha2::Sha256::new())
    }

    /// Appends `data` to the message.
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// The digest of everything given to [`update`](Sha256::update).
    pub fn finish(self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(&self.0.finalize());
        out
    }
}

/// The SHA-256 digest of `data`.
pub fn digest(data: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(data);
    h.finish()
}

/// Lower-case hexadecimal of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::{Sha256, digest, hex};

    // Test vectors from FIPS 180-2 appendix B / NIST's SHA examples.
    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const TWO_BLOCK: &str = "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1";
    const MILLION_A: &str = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";

    #[test]
    fn fips_vectors() {
        assert_eq!(hex(&digest(b"abc")), ABC);
        assert_eq!(hex(&digest(b"")), EMPTY);
        assert_eq!(
            hex(&digest(
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
            )),
            TWO_BLOCK
        );
        assert_eq!(hex(&digest(&vec![b'a'; 1_000_000])), MILLION_A);
    }

    #[test]
    fn streaming_in_odd_pieces_matches_one_call() {
        // Piece sizes that straddle the 64-byte block and the 56-byte padding edge.
        let msg: Vec<u8> = (0..1000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        for len in [0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 1000] {
            let one = digest(&msg[..len]);
            for piece in [1, 3, 17, 63, 64, 65] {
                let mut h = Sha256::new();
                for c in msg[..len].chunks(piece) {
                    h.update(c);
                }
                assert_eq!(h.finish(), one, "len {len} piece {piece}");
            }
        }
        let mut h = Sha256::new();
        for _ in 0..1000 {
            h.update(&[b'a'; 1000]);
        }
        assert_eq!(hex(&h.finish()), MILLION_A);
    }
}
