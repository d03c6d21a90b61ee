//! Memory sizes, CPU counts and durations as users write them (`512Mi`, `0.5`, `1m30s`).

use crate::validation::quoted;

/// Docker refuses memory limits below 6 MiB.
pub const MIN_MEMORY_BYTES: u64 = 6 * 1024 * 1024;

/// Parses a memory size: a whole number with an optional unit, case-insensitive: `b`,
/// `k`/`kb`/`ki`/`kib`, `m`/`mb`/`mi`/`mib`, `g`..., `t`... Every unit is a power of 1024, the
/// way Docker reads `--memory 512m`: nanocl runs Docker containers, so a limit means what it
/// means to `docker run`. (Kubernetes reads `512M` as 10^6 bytes; here it is 512 MiB, which the
/// docs say plainly.) Fractions (`1.5G`) are refused rather than rounded.
pub fn parse_memory(value: &str) -> Result<u64, String> {
    let bad = || {
        format!(
            "invalid memory size {}: expected a whole number with an optional unit b, k, m, g, t (or Ki, Mi, Gi, Ti), e.g. \"256Mi\"",
            quoted(value)
        )
    };
    let digits_end = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(digits_end);
    if number.is_empty() {
        return Err(bad());
    }
    let number: u64 = number.parse().map_err(|_| bad())?;
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "ki" | "kib" => 10,
        "m" | "mb" | "mi" | "mib" => 20,
        "g" | "gb" | "gi" | "gib" => 30,
        "t" | "tb" | "ti" | "tib" => 40,
        _ => return Err(bad()),
    };
    number
        .checked_mul(1u64 << shift)
        .filter(|b| *b <= i64::MAX as u64)
        .ok_or_else(|| format!("memory size {} is too large", quoted(value)))
}

/// Validates a memory limit: a size of at least 6 MiB.
pub fn memory_limit(value: &str) -> Result<(), String> {
    let bytes = parse_memory(value)?;
    if bytes < MIN_MEMORY_BYTES {
        return Err(format!(
            "memory limit {} is below Docker's minimum of 6Mi",
            quoted(value)
        ));
    }
    Ok(())
}

/// Most CPUs a cargo may ask for.
pub const MAX_CPUS: f64 = 1024.0;

/// Validates a CPU count: more than 0, at most 1024, finite, at most 3 decimals (Docker's
/// resolution is a thousandth of a CPU).
pub fn cpus(value: f64) -> Result<(), String> {
    if !value.is_finite() || value <= 0.0 || value > MAX_CPUS {
        return Err(format!(
            "must be a number of CPUs greater than 0 and at most {MAX_CPUS}, got {value}"
        ));
    }
    let millis = value * 1000.0;
    if (millis - millis.round()).abs() > 1e-6 {
        return Err(format!(
            "must have at most 3 decimals (a thousandth of a CPU), got {value}"
        ));
    }
    Ok(())
}

/// Parses a duration made of number-unit pairs (`ms`, `s`, `m`, `h`), e.g. `1m30s`, `500ms`,
/// into milliseconds.
pub fn parse_duration_ms(value: &str) -> Result<u64, String> {
    let bad = || {
        format!(
            "invalid duration {}: expected numbers with units ms, s, m or h, e.g. \"30s\" or \"1m30s\"",
            quoted(value)
        )
    };
    if value.is_empty() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    let mut rest = value;
    while !rest.is_empty() {
        let digits_end = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        if digits_end == 0 {
            return Err(bad());
        }
        let number: u64 = rest[..digits_end].parse().map_err(|_| bad())?;
        rest = &rest[digits_end..];
        let (unit_ms, unit_len) = if rest.starts_with("ms") {
            (1, 2)
        } else if rest.starts_with('s') {
            (1_000, 1)
        } else if rest.starts_with('m') {
            (60_000, 1)
        } else if rest.starts_with('h') {
            (3_600_000, 1)
        } else {
            return Err(bad());
        };
        rest = &rest[unit_len..];
        total = number
            .checked_mul(unit_ms)
            .and_then(|ms| total.checked_add(ms))
            .ok_or_else(|| format!("duration {} is too large", quoted(value)))?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_should_use_binary_units_case_insensitively() {
        assert_eq!(parse_memory("512"), Ok(512));
        assert_eq!(parse_memory("256Mi"), Ok(256 << 20));
        assert_eq!(parse_memory("256m"), Ok(256 << 20));
        assert_eq!(parse_memory("1G"), Ok(1 << 30));
        assert_eq!(parse_memory("2kib"), Ok(2048));
        for bad in [
            "",
            "Mi",
            "1.5G",
            "-1",
            "12 MB",
            "10x",
            "99999999999999999999",
        ] {
            assert!(parse_memory(bad).is_err(), "{bad}");
        }
        assert!(memory_limit("4m").is_err());
        assert_eq!(memory_limit("6Mi"), Ok(()));
        assert!(parse_memory("9999999999T").is_err());
    }

    #[test]
    fn cpus_should_be_positive_bounded_and_millicpu_precise() {
        assert_eq!(cpus(0.5), Ok(()));
        assert_eq!(cpus(2.0), Ok(()));
        assert_eq!(cpus(0.001), Ok(()));
        for bad in [0.0, -1.0, 0.0001, 2000.0, f64::NAN, f64::INFINITY] {
            assert!(cpus(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_should_sum_their_parts() {
        assert_eq!(parse_duration_ms("1m30s"), Ok(90_000));
        assert_eq!(parse_duration_ms("500ms"), Ok(500));
        assert_eq!(parse_duration_ms("2h"), Ok(7_200_000));
        for bad in ["", "s", "10", "1.5s", "10d", "-1s"] {
            assert!(parse_duration_ms(bad).is_err(), "{bad}");
        }
    }
}
