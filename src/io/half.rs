//! Exact widening of 16-bit floats to `f32`.
//!
//! IEEE binary16 (`f16`): 1 sign, 5 exponent (bias 15), 10 mantissa bits;
//! value = (−1)ˢ·2^(e−15)·(1 + m/2¹⁰) for 0 < e < 31, (−1)ˢ·2^(−14)·m/2¹⁰
//! for e = 0, ±Inf/NaN for e = 31. Every `f16` is exactly an `f32`.
//! bfloat16 (`bf16`) is the top half of an `f32`, so widening is a shift.

/// The `f32` equal to the binary16 number with bits `h` (NaN stays NaN,
/// with its payload shifted into the top mantissa bits).
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h & 0x8000) << 16;
    let exp = u32::from((h >> 10) & 0x1f);
    let man = u32::from(h & 0x3ff);
    match exp {
        // Subnormal (or zero): m·2^(−24) is exact in f32.
        0 => (man as f32 * (-24f32).exp2()).copysign(f32::from_bits(sign | 0x3f80_0000)),
        0x1f => f32::from_bits(sign | 0x7f80_0000 | (man << 13)),
        // Rebias the exponent from 15 to 127.
        e => f32::from_bits(sign | ((e + 112) << 23) | (man << 13)),
    }
}

/// The `f32` whose top 16 bits are `h` (bfloat16 → f32, exact).
pub fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits(u32::from(h) << 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every one of the 65 536 bit patterns against the defining formula in f64.
    #[test]
    fn f16_matches_the_formula_for_all_bit_patterns() {
        for h in 0..=u16::MAX {
            let s = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
            let e = i32::from((h >> 10) & 0x1f);
            let m = f64::from(h & 0x3ff);
            let got = f16_to_f32(h);
            match e {
                31 if m == 0.0 => assert_eq!(got, s as f32 * f32::INFINITY),
                31 => assert!(got.is_nan(), "{h:#06x}"),
                0 => assert_eq!(
                    f64::from(got).to_bits(),
                    (s * 2f64.powi(-14) * m / 1024.0).to_bits(),
                    "{h:#06x}"
                ),
                _ => assert_eq!(
                    f64::from(got),
                    s * 2f64.powi(e - 15) * (1.0 + m / 1024.0),
                    "{h:#06x}"
                ),
            }
        }
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 5.960_464_5e-8);
    }

    #[test]
    fn bf16_is_the_top_half() {
        assert_eq!(bf16_to_f32(0x3f80), 1.0);
        assert_eq!(bf16_to_f32(0xc040), -3.0);
        assert!(bf16_to_f32(0x7fc0).is_nan());
    }
}
