//! Durations as people write them in the config (`90s`, `30m`, `4h`, `7d`,
//! `1h30m`, `500ms`), parsed once when the config is read.

use serde::Deserialize;

/// A value as error messages show it: cut short, so that a pasted secret
/// or a runaway value never floods a log (the line number says where).
pub fn cut(value: &str) -> String {
    const MAX: usize = 64;
    if value.chars().count() <= MAX {
        value.to_string()
    } else {
        let head: String = value.chars().take(MAX - 16).collect();
        format!("{head}… ({} bytes)", value.len())
    }
}

/// `90s`, `30m`, `4h`, `7d`, or combinations (`1h30m`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct DurationSpec(pub std::time::Duration);

impl DurationSpec {
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "'{}' is not a duration; write it like 90s, 30m, 4h, 7d or 1h30m",
                cut(text)
            )
        };
        // In milliseconds: `500ms` is a unit of its own (capture's coalesce).
        let mut total = 0u64;
        let mut digits = String::new();
        let mut chars = text.trim().chars().peekable();
        while let Some(c) = chars.next() {
            if c.is_ascii_digit() {
                digits.push(c);
                continue;
            }
            let n: u64 = digits.parse().map_err(|_| bad())?;
            digits.clear();
            let unit = match c {
                'm' if chars.peek() == Some(&'s') => {
                    chars.next();
                    1
                }
                's' => 1000,
                'm' => 60_000,
                'h' => 3_600_000,
                'd' => 86_400_000,
                'w' => 7 * 86_400_000,
                _ => return Err(bad()),
            };
            total = total
                .checked_add(n.checked_mul(unit).ok_or_else(bad)?)
                .ok_or_else(bad)?;
        }
        if !digits.is_empty() || total == 0 {
            return Err(bad());
        }
        Ok(DurationSpec(std::time::Duration::from_millis(total)))
    }
}

impl<'de> Deserialize<'de> for DurationSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        DurationSpec::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// For an optional duration field of a plain `Duration` (serde's
/// `deserialize_with`).
pub fn optional<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<std::time::Duration>, D::Error> {
    Ok(Option::<DurationSpec>::deserialize(d)?.map(|s| s.0))
}
