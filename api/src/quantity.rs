//! Kubernetes resource quantities (`500m`, `2`, `1.5`, `512Mi`, `1Gi`, `1G`, `1e3`), the one
//! grammar for the `resources` of a manifest and the `capacity:` of `kiln up`'s config.
//!
//! Only what Kiln counts is read: CPU in millicores and memory in bytes, rounded up as the
//! kubelet does (a request of `0.1m` CPU still takes one millicore).

/// A quantity that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a Kubernetes quantity (e.g. 500m, 2, 512Mi, 1Gi)")]
pub struct QuantityError(pub String);

/// The value of `text` times `scale` (a power of ten or two applied before rounding up), or
/// an error. Decimal and binary suffixes as Kubernetes reads them.
fn parse_scaled(text: &str, scale: f64) -> Result<u64, QuantityError> {
    let error = || QuantityError(text.to_owned());
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+'))
        .unwrap_or(trimmed.len());
    let (number, suffix) = trimmed.split_at(split);
    if number.is_empty() || number.starts_with('-') {
        return Err(error());
    }
    let value: f64 = number.parse().map_err(|_| error())?;
    let multiplier = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exponent if exponent.starts_with(['e', 'E']) => {
            let power: i32 = exponent[1..].parse().map_err(|_| error())?;
            10f64.powi(power)
        }
        _ => return Err(error()),
    };
    let scaled = (value * multiplier * scale).ceil();
    if !scaled.is_finite() || scaled < 0.0 || scaled > u64::MAX as f64 {
        return Err(error());
    }
    Ok(scaled as u64)
}

/// CPU in millicores: `500m` is 500, `2` is 2000, `0.25` is 250.
pub fn cpu_millis(text: &str) -> Result<u64, QuantityError> {
    parse_scaled(text, 1000.0)
}

/// Memory in bytes: `512Mi` is 536,870,912, `1G` is 10^9.
pub fn bytes(text: &str) -> Result<u64, QuantityError> {
    parse_scaled(text, 1.0)
}

/// Bytes as a person reads them, in the largest binary unit that keeps a whole number
/// (`8Gi`, `512Mi`, `1000`).
pub fn format_bytes(bytes: u64) -> String {
    for (unit, size) in [
        ("Ti", 1u64 << 40),
        ("Gi", 1 << 30),
        ("Mi", 1 << 20),
        ("Ki", 1 << 10),
    ] {
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{}{unit}", bytes / size);
        }
    }
    bytes.to_string()
}

/// Millicores as Kubernetes writes them: `2` for 2000, `500m` for 500.
pub fn format_cpu(millis: u64) -> String {
    if millis.is_multiple_of(1000) {
        (millis / 1000).to_string()
    } else {
        format!("{millis}m")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cpu_and_memory_as_kubernetes_does() {
        assert_eq!(cpu_millis("500m"), Ok(500));
        assert_eq!(cpu_millis("2"), Ok(2000));
        assert_eq!(cpu_millis("0.25"), Ok(250));
        assert_eq!(cpu_millis("0.1m"), Ok(1), "rounded up");
        assert_eq!(bytes("512Mi"), Ok(512 << 20));
        assert_eq!(bytes("1Gi"), Ok(1 << 30));
        assert_eq!(bytes("1G"), Ok(1_000_000_000));
        assert_eq!(bytes("1e3"), Ok(1000));
        assert_eq!(bytes("128974848"), Ok(128_974_848));
        for bad in ["", "-1", "1x", "Mi", "1.2.3Gi", "1Gb"] {
            assert!(bytes(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn formats_read_back() {
        for b in [8u64 << 30, 512 << 20, 1000, 3 << 10] {
            assert_eq!(bytes(&format_bytes(b)), Ok(b));
        }
        for m in [2000u64, 500, 1500] {
            assert_eq!(cpu_millis(&format_cpu(m)), Ok(m));
        }
    }
}
