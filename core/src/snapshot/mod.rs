//! The snapshot format, pure (no IO): sealed objects, envelope keys, the
//! manifest and payload. The byte layouts are documented in docs/FORMAT.md.

pub mod changes;
pub mod keys;
pub mod manifest;
pub mod object;

pub use keys::{DataKey, FileKey, WrappedKey};
pub use manifest::{Entry, Manifest, PublicManifest, Resource, Source};
pub use object::{Header, ObjectError, ObjectType};

/// The time part of a snapshot id.
const ID_TIME: &[time::format_description::BorrowedFormatItem<'static>] =
    time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");

/// A snapshot id: UTC time to the second, then 8 hex digits: the millisecond
/// (3 digits, 000-3e7) and 5 random ones, so ids sort by time to the
/// millisecond and two agents never collide (`20261122T071500Z-1f43fa2c`).
/// Older ids with 8 random digits keep parsing; they sort by the second.
pub fn snapshot_id(now: time::OffsetDateTime, random: u32) -> String {
    format!(
        "{}-{:03x}{:05x}",
        utc(now, ID_TIME),
        now.to_offset(time::UtcOffset::UTC).millisecond(),
        random & 0xf_ffff
    )
}

/// The time a snapshot id carries (None for names adfdr does not write).
pub fn snapshot_time(id: &str) -> Option<time::OffsetDateTime> {
    time::PrimitiveDateTime::parse(id.get(..16)?, ID_TIME)
        .ok()
        .map(|t| t.assume_utc())
}

/// RFC 3339 UTC with seconds (`2026-11-22T07:15:00Z`).
pub fn rfc3339(now: time::OffsetDateTime) -> String {
    let full = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    utc(now, full)
}

fn utc(
    now: time::OffsetDateTime,
    format: &[time::format_description::BorrowedFormatItem<'_>],
) -> String {
    now.to_offset(time::UtcOffset::UTC)
        .format(format)
        .expect("a UTC time with a four-digit year formats")
}

/// Parses what `rfc3339` writes (and any RFC 3339 time).
pub fn parse_time(text: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()
}

pub use crate::model::names::safe_name;

/// A time as people type it at 2 a.m.: RFC 3339 (`2026-12-07T19:14:00Z`),
/// or without seconds, without a zone, with a space for the `T`, or a date
/// alone (midnight). A time without a zone is read in `local` (this
/// machine's offset then). Returns the instant and how it was read, to say
/// so.
pub fn parse_when(
    text: &str,
    local: &dyn Fn(time::PrimitiveDateTime) -> time::UtcOffset,
) -> Result<(time::OffsetDateTime, String), String> {
    use time::macros::format_description;
    let t = text.trim();
    if let Some(at) = parse_time(t) {
        return Ok((at, format!("{t} as {}", rfc3339(at))));
    }
    let normal = t.replacen(' ', "T", 1);
    let zoned = [
        format_description!("[year]-[month]-[day]T[hour]:[minute][offset_hour]:[offset_minute]"),
        format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second][offset_hour]:[offset_minute]"
        ),
    ];
    let with_z = normal.strip_suffix('Z').map(|n| format!("{n}+00:00"));
    for f in zoned {
        if let Ok(at) = time::OffsetDateTime::parse(with_z.as_deref().unwrap_or(&normal), f) {
            return Ok((at, format!("{t} as {}", rfc3339(at))));
        }
    }
    let plain = [
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]"),
        format_description!("[year]-[month]-[day]T[hour]:[minute]"),
    ];
    let date_only = time::Date::parse(&normal, format_description!("[year]-[month]-[day]"))
        .ok()
        .map(|d| d.midnight());
    let local_time = plain
        .iter()
        .find_map(|f| time::PrimitiveDateTime::parse(&normal, f).ok())
        .or(date_only);
    match local_time {
        Some(p) => {
            let offset = local(p);
            let at = p.assume_offset(offset);
            Ok((
                at,
                format!(
                    "{t} as {} (this machine's local time)",
                    rfc3339(at.to_offset(offset))
                ),
            ))
        }
        None => Err(format!(
            "{t:?} is not a time: give 2026-12-07T19:14:00Z, 2026-12-07T19:14 or 2026-12-07 19:14 (local time), or 2026-12-07 (midnight)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 26, item 5: times as people type them, read as they mean them.
    #[test]
    fn times_are_read_as_typed() {
        let plus_one =
            |_: time::PrimitiveDateTime| time::UtcOffset::from_hms(1, 0, 0).expect("offset");
        let cases = [
            ("2026-12-07T19:14:00Z", "2026-12-07T19:14:00Z"),
            ("2026-12-07T19:14Z", "2026-12-07T19:14:00Z"),
            ("2026-12-07T19:14", "2026-12-07T18:14:00Z"),
            ("2026-12-07 19:14:30", "2026-12-07T18:14:30Z"),
            ("2026-12-07", "2026-12-06T23:00:00Z"),
            ("2026-12-07T19:14+02:00", "2026-12-07T17:14:00Z"),
        ];
        for (typed, want) in cases {
            let (at, how) = parse_when(typed, &plus_one).expect(typed);
            assert_eq!(rfc3339(at), want, "{typed}");
            assert!(how.starts_with(typed), "{how}");
        }
        let (_, how) = parse_when("2026-12-07T19:14", &plus_one).expect("local");
        assert!(how.contains("local time"), "{how}");
        assert!(parse_when("yesterday", &plus_one).is_err());
    }

    #[test]
    fn ids_sort_by_time() {
        let a = snapshot_id(
            time::macros::datetime!(2026-11-22 07:15:00 UTC),
            0xffff_ffff,
        );
        let b = snapshot_id(time::macros::datetime!(2026-11-22 07:15:01 UTC), 0);
        assert_eq!(a, "20261122T071500Z-000fffff");
        assert!(a < b);
        // Within one second, by the millisecond whatever the random part.
        let c = snapshot_id(
            time::macros::datetime!(2026-11-22 07:15:00.002 UTC),
            0xffff_ffff,
        );
        let d = snapshot_id(time::macros::datetime!(2026-11-22 07:15:00.999 UTC), 0);
        assert_eq!(d, "20261122T071500Z-3e700000");
        assert!(a < c && c < d && d < b, "{a} {c} {d} {b}");
        assert_eq!(
            rfc3339(time::macros::datetime!(2026-01-02 03:04:05 +01:00)),
            "2026-01-02T02:04:05Z"
        );
        assert!(parse_time("2026-01-02T02:04:05Z").is_some());
        assert!(
            safe_name("sales-prod_1.x")
                && !safe_name("../x")
                && !safe_name("a/b")
                && !safe_name("")
        );
    }

    #[test]
    fn snapshot_ids_carry_their_time() {
        let t = snapshot_time("20261122T092249Z-cc094363").expect("time");
        assert_eq!(rfc3339(t), "2026-11-22T09:22:49Z");
        assert!(snapshot_time("garbage").is_none());
        let now = time::macros::datetime!(2026-01-02 03:04:05 UTC);
        let id = snapshot_id(now, 7);
        assert_eq!(snapshot_time(&id), Some(now));
    }
}
