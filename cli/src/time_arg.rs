//! Points in time given on the command line (`--from-time`, `--to-time`): milliseconds since the Unix epoch, or
//! an RFC 3339 timestamp such as `2026-11-27T00:30:00Z` or `2026-11-27T01:30:00.250+01:00`.
//!
//! A small parser of our own rather than a date library: the CLI needs only this one direction, and RFC 3339
//! is a fixed layout (date, `T` or space, time, optional fraction, `Z` or a numeric offset).

/// Parses `text` as ms since the Unix epoch (digits only) or as an RFC 3339 timestamp. A clap value parser.
pub fn parse_time_ms(text: &str) -> Result<i64, String> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().map_err(|_| format!("{text:?} is too large for milliseconds since the epoch"));
    }
    parse_rfc3339(text).ok_or_else(|| {
        format!("{text:?} is neither milliseconds since the epoch nor an RFC 3339 time like 2026-11-27T00:30:00Z")
    })
}

fn parse_rfc3339(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    if bytes.len() < 20 || bytes[4] != b'-' || bytes[7] != b'-' || !matches!(bytes[10], b'T' | b't' | b' ') {
        return None;
    }
    if bytes[13] != b':' || bytes[16] != b':' {
        return None;
    }
    let number = |from: usize, to: usize| -> Option<i64> {
        let part = text.get(from..to)?;
        part.bytes().all(|b| b.is_ascii_digit()).then(|| part.parse().ok())?
    };
    let (year, month, day) = (number(0, 4)?, number(5, 7)?, number(8, 10)?);
    let (hour, minute, second) = (number(11, 13)?, number(14, 16)?, number(17, 19)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    // 60 is a leap second; it counts as the next second, as Unix time does.
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &text[19..];
    let mut millis = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        // Milliseconds are the unit of record timestamps; finer digits are dropped.
        let kept = &fraction[..digits.min(3)];
        millis = kept.parse::<i64>().ok()? * 10_i64.pow(3 - kept.len() as u32);
        rest = &fraction[digits..];
    }
    let offset_minutes = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let offset = rest.get(1..)?;
            if offset.len() != 5 || offset.as_bytes()[2] != b':' {
                return None;
            }
            let (h, m) = (offset[..2].parse::<i64>().ok()?, offset[3..].parse::<i64>().ok()?);
            if h > 23 || m > 59 {
                return None;
            }
            sign * (h * 60 + m)
        }
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_minutes * 60;
    Some(seconds * 1_000 + millis)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_pass_through() {
        assert_eq!(parse_time_ms("0"), Ok(0));
        assert_eq!(parse_time_ms("1764203400000"), Ok(1_764_203_400_000));
    }

    #[test]
    fn rfc3339_times_become_epoch_milliseconds() {
        assert_eq!(parse_time_ms("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_time_ms("2026-11-27T00:30:00Z"), Ok(1_795_739_400_000));
        assert_eq!(parse_time_ms("2026-11-27T01:30:00.25+01:00"), Ok(1_795_739_400_250));
        assert_eq!(parse_time_ms("2026-11-26 19:30:00.123456-05:00"), Ok(1_795_739_400_123));
        assert_eq!(parse_time_ms("2024-02-29T00:00:00Z"), Ok(1_709_164_800_000));
        assert_eq!(parse_time_ms("1969-12-31T23:59:59Z"), Ok(-1_000));
    }

    #[test]
    fn malformed_times_are_refused_with_the_accepted_forms() {
        for bad in
            ["", "yesterday", "2026-11-27", "2026-13-01T00:00:00Z", "2025-02-29T00:00:00Z", "2026-11-27T24:00:00Z"]
        {
            let err = parse_time_ms(bad).expect_err(bad);
            assert!(err.contains("RFC 3339"), "{err}");
        }
        assert!(parse_time_ms("2026-11-27T00:30:00").is_err(), "an offset is required");
        assert!(parse_time_ms("2026-11-27T00:30:00.Z").is_err());
        assert!(parse_time_ms("99999999999999999999").is_err());
    }
}
