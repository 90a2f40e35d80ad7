//! Durations and sizes as flags, messages and the policy section write
//! them: `250ms`, `5s`, `64KiB`, `8MiB`, read the way `wasmtime`'s own flags
//! read them and printed back in the largest unit that keeps them exact, so
//! a message echoes what the user typed.
//!
//! This module knows nothing of what the numbers limit; it is the bottom
//! layer, used by every other.

use std::fmt;
use std::time::Duration;

/// Parses a duration the way `wasmtime` flags do: a number with an `ns`,
/// `us` (or `μs`), `ms` or `s` suffix; a bare number means seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || {
        format!(
            "invalid duration `{}`: expected a whole number with an optional unit, e.g. 100us, 250ms or 5s",
            text.trim()
        )
    };
    let (value, unit) = number_and_unit(text).ok_or_else(invalid)?;
    match unit {
        "" | "s" => Ok(Duration::from_secs(value)),
        "ms" => Ok(Duration::from_millis(value)),
        "us" | "μs" => Ok(Duration::from_micros(value)),
        "ns" => Ok(Duration::from_nanos(value)),
        _ => Err(invalid()),
    }
}

/// The whole number that `text` starts with and the unit after it, as in
/// `250ms` or `64KiB`; `None` when it does not start with one that fits a
/// `u64`.
fn number_and_unit(text: &str) -> Option<(u64, &str)> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    Some((number.parse().ok()?, unit))
}

/// Displays a duration in the notation [`parse_duration`] reads, using the
/// largest unit that keeps it exact, so messages echo what the user typed
/// (`100us`, not `0.0001s`).
#[derive(Clone, Copy, Debug)]
pub struct HumanDuration(pub Duration);

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nanos = self.0.as_nanos();
        for (unit, per) in [("s", 1_000_000_000), ("ms", 1_000_000), ("us", 1_000)] {
            if nanos != 0 && nanos.is_multiple_of(per) {
                return write!(f, "{}{unit}", nanos / per);
            }
        }
        write!(f, "{nanos}ns")
    }
}

/// Parses a size in bytes: a whole number with an optional binary unit,
/// `K`/`KiB`, `M`/`MiB` or `G`/`GiB` (powers of 1024), or `B`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let invalid = || {
        format!(
            "invalid size `{}`: expected a whole number of bytes with an optional unit, e.g. 4096, 64KiB, 8MiB or 1GiB",
            text.trim()
        )
    };
    let (value, unit) = number_and_unit(text).ok_or_else(invalid)?;
    let shift = match unit {
        "" | "B" => 0,
        "K" | "k" | "KiB" => 10,
        "M" | "m" | "MiB" => 20,
        "G" | "g" | "GiB" => 30,
        _ => return Err(invalid()),
    };
    value.checked_mul(1 << shift).ok_or_else(invalid)
}

/// Displays a size in bytes in the notation [`parse_size`] reads, using the
/// largest binary unit that keeps it exact (`8MiB`, `1536KiB`, `100B`).
#[derive(Clone, Copy, Debug)]
pub struct HumanSize(pub u64);

impl fmt::Display for HumanSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.0;
        for (unit, shift) in [("GiB", 30), ("MiB", 20), ("KiB", 10)] {
            if bytes != 0 && bytes.trailing_zeros() >= shift {
                return write!(f, "{}{unit}", bytes >> shift);
            }
        }
        write!(f, "{bytes}B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_wasmtime_flags() {
        assert_eq!(parse_duration("100us"), Ok(Duration::from_micros(100)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert_eq!(parse_duration("9ns"), Ok(Duration::from_nanos(9)));
        for bad in ["banana", "", "ms", "1.5s", "-1s", "10m", "1 s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn durations_print_in_the_unit_the_user_would_type() {
        let show = |d| HumanDuration(d).to_string();
        assert_eq!(show(Duration::from_micros(100)), "100us");
        assert_eq!(show(Duration::from_millis(250)), "250ms");
        assert_eq!(show(Duration::from_millis(1500)), "1500ms");
        assert_eq!(show(Duration::from_secs(5)), "5s");
        assert_eq!(show(Duration::from_nanos(7)), "7ns");
        assert_eq!(show(Duration::ZERO), "0ns");
    }

    #[test]
    fn sizes_read_binary_units_and_print_back_the_same_way() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("100B"), Ok(100));
        assert_eq!(parse_size("64KiB"), Ok(64 << 10));
        assert_eq!(parse_size("8M"), Ok(8 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        for bad in [
            "",
            "MiB",
            "1.5MiB",
            "-1",
            "10TB",
            "1 MiB",
            "99999999999999999999G",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?} should be rejected");
        }
        let show = |n| HumanSize(n).to_string();
        assert_eq!(show(8 << 20), "8MiB");
        assert_eq!(show(1536 << 10), "1536KiB");
        assert_eq!(show(1 << 30), "1GiB");
        assert_eq!(show(100), "100B");
        assert_eq!(show(0), "0B");
    }
}
