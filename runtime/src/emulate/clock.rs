//! Dates as servers write them, from the system clock, without a calendar crate: HTTP's
//! IMF-fixdate (`Wed, 02 Dec 2026 01:40:00 GMT`) and mail's RFC 5322 date
//! (`Wed, 2 Dec 2026 01:40:00 +0000`), and their recognition in scanned replies.

use std::time::{SystemTime, UNIX_EPOCH};

const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Seconds since the epoch, now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A moment broken into the fields the formats print (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    pub weekday: usize,
    pub year: i64,
    pub month: usize,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

impl Civil {
    pub fn now() -> Civil {
        Civil::from_unix(unix_now())
    }

    /// Howard Hinnant's days-to-civil algorithm.
    pub fn from_unix(secs: u64) -> Civil {
        let days = (secs / 86_400) as i64;
        let rem = secs % 86_400;
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as usize;
        let year = yoe + era * 400 + i64::from(month <= 2);
        Civil {
            weekday: (days % 7) as usize,
            year,
            month: month - 1,
            day,
            hour: (rem / 3600) as u32,
            minute: (rem / 60 % 60) as u32,
            second: (rem % 60) as u32,
        }
    }

    /// `Wed, 02 Dec 2026 01:40:00 GMT`
    pub fn http(&self) -> String {
        self.stamp(format!("{:02}", self.day), "GMT")
    }

    /// `Wed, 2 Dec 2026 01:40:00 +0000`
    pub fn mail(&self) -> String {
        self.stamp(self.day.to_string(), "+0000")
    }

    /// `Dec 02 04:42` (`Dec  2 04:42` unpadded), as `ls -l` dates a recent file.
    pub fn ls(&self, zero_pad: bool) -> String {
        let day = match zero_pad {
            true => format!("{:02}", self.day),
            false => format!("{:>2}", self.day),
        };
        format!(
            "{} {day} {:02}:{:02}",
            MONTHS[self.month], self.hour, self.minute
        )
    }

    /// `20261202044246`, as FTP's MDTM writes it.
    pub fn mdtm(&self) -> String {
        format!(
            "{}{:02}{:02}{:02}{:02}{:02}",
            self.year,
            self.month + 1,
            self.day,
            self.hour,
            self.minute,
            self.second
        )
    }

    fn stamp(&self, day: String, zone: &str) -> String {
        format!(
            "{}, {day} {} {} {:02}:{:02}:{:02} {zone}",
            DAYS[self.weekday], MONTHS[self.month], self.year, self.hour, self.minute, self.second
        )
    }
}

/// Which date format a scanned reply used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateStyle {
    Http,
    Mail,
}

/// A date found in a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundDate {
    pub range: std::ops::Range<usize>,
    pub style: DateStyle,
    /// Seconds since the epoch (the zone's offset ignored: servers write UTC or nearly).
    pub unix: i64,
}

/// Finds the first date of either format in `text`.
pub fn find_date(text: &str) -> Option<FoundDate> {
    let b = text.as_bytes();
    (0..b.len()).find_map(|i| {
        let rest = text.get(i..)?;
        if !DAYS.iter().any(|d| rest.starts_with(d)) || rest.get(3..5) != Some(", ") {
            return None;
        }
        date_at(rest).map(|(len, style, unix)| FoundDate {
            range: i..i + len,
            style,
            unix,
        })
    })
}

/// Howard Hinnant's days-from-civil algorithm (`month` from 1).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses `Ddd, D[D] Mon YYYY HH:MM:SS ZONE` at the start of `s`: its length, style and time.
fn date_at(s: &str) -> Option<(usize, DateStyle, i64)> {
    let mut parts = s[5..].splitn(5, ' ');
    let day = parts.next()?;
    let mon = parts.next()?;
    let year = parts.next()?;
    let time = parts.next()?;
    let zone_and_rest = parts.next()?;
    let numeric = |t: &str, n: std::ops::RangeInclusive<usize>| {
        n.contains(&t.len()) && t.bytes().all(|c| c.is_ascii_digit())
    };
    let time_ok = time.len() == 8 && time.bytes().filter(|&c| c == b':').count() == 2;
    if !numeric(day, 1..=2) || !MONTHS.contains(&mon) || !numeric(year, 4..=4) || !time_ok {
        return None;
    }
    let month = MONTHS.iter().position(|m| *m == mon)? as i64 + 1;
    let hms: Vec<i64> = time.split(':').filter_map(|t| t.parse().ok()).collect();
    let days = days_from_civil(year.parse().ok()?, month, day.parse().ok()?);
    let unix = days * 86_400 + hms.first()? * 3600 + hms.get(1)? * 60 + hms.get(2)?;
    let head = 5 + day.len() + mon.len() + year.len() + time.len() + 4;
    let (zone, style) = if zone_and_rest.starts_with("GMT") {
        (3, DateStyle::Http)
    } else {
        let z = zone_and_rest.get(..5)?;
        let signed = z.starts_with(['+', '-']) && numeric(&z[1..], 4..=4);
        if !signed {
            return None;
        }
        (5, DateStyle::Mail)
    };
    Some((head + zone, style, unix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_a_known_moment() {
        // 2026-12-02 01:40:00 UTC, a Wednesday.
        let c = Civil::from_unix(1_796_175_600);
        assert_eq!(c.http(), "Wed, 02 Dec 2026 01:40:00 GMT");
        assert_eq!(c.mail(), "Wed, 2 Dec 2026 01:40:00 +0000");
        assert_eq!(c.ls(true), "Dec 02 01:40");
        assert_eq!(c.ls(false), "Dec  2 01:40");
        assert_eq!(c.mdtm(), "20261202014000");
    }

    #[test]
    fn finds_dates_of_both_styles() {
        let t = "Date: Wed, 02 Dec 2026 01:40:00 GMT\r\n";
        let d = find_date(t).unwrap();
        assert_eq!(
            (d.range, d.style, d.unix),
            (6..35, DateStyle::Http, 1_796_175_600)
        );
        let m = "220 mx ESMTP Exim 4.96 Wed, 2 Dec 2026 01:40:00 +0000\r\n";
        let d = find_date(m).unwrap();
        assert_eq!(&m[d.range], "Wed, 2 Dec 2026 01:40:00 +0000");
        assert_eq!(d.style, DateStyle::Mail);
        assert_eq!(find_date("Wed, nothing"), None);
    }
}
