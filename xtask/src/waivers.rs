//! CAWS waivers (`.caws/waivers.yaml`): a failing check may be waived for at most 14
//! days, with a reason, an owner and a compensating control. A waived failure is
//! reported as such and does not fail its gate; an expired or malformed waiver
//! waives nothing (and says why). Any active waiver caps the trust score at 79.

use serde_json::Value;
use std::path::Path;

/// The longest a waiver may run.
pub const MAX_DAYS: i64 = 14;

#[derive(Debug, Clone, PartialEq)]
pub struct Waiver {
    pub id: String,
    pub gate: String,
    pub check: String,
    pub reason: String,
    pub owner: String,
    pub created: i64,
    pub expires: i64,
    pub compensating_control: String,
}

/// Days since 1970-01-01 for a `YYYY-MM-DD` date (proleptic Gregorian).
pub fn parse_date(s: &str) -> Option<i64> {
    let mut it = s.trim().splitn(3, '-');
    let y: i64 = it.next()?.parse().ok()?;
    let m: i64 = it.next()?.parse().ok()?;
    let d: i64 = it.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

/// Today, in days since 1970-01-01 (UTC).
pub fn today() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| (d.as_secs() / 86_400) as i64)
}

/// Load the waivers; a missing file means none. Malformed entries are errors.
pub fn load(path: &Path) -> Result<Vec<Waiver>, String> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(Vec::new());
    };
    let v: Value = serde_norway::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let list = v["waivers"].as_array().cloned().unwrap_or_default();
    list.iter()
        .map(|w| {
            let s = |k: &str| {
                w[k].as_str()
                    .filter(|x| !x.trim().is_empty())
                    .map(str::to_string)
                    .ok_or(format!("{}: waiver needs '{k}'", path.display()))
            };
            let date = |k: &str| {
                s(k).and_then(|d| {
                    parse_date(&d).ok_or(format!("{}: bad date in '{k}'", path.display()))
                })
            };
            let waiver = Waiver {
                id: s("id")?,
                gate: s("gate")?,
                check: s("check")?,
                reason: s("reason")?,
                owner: s("owner")?,
                created: date("created")?,
                expires: date("expires")?,
                compensating_control: s("compensating_control")?,
            };
            if waiver.expires < waiver.created || waiver.expires - waiver.created > MAX_DAYS {
                return Err(format!(
                    "{}: waiver {} runs longer than {MAX_DAYS} days",
                    path.display(),
                    waiver.id
                ));
            }
            Ok(waiver)
        })
        .collect()
}

/// The active waiver for `gate`/`check` on `day`, if any.
pub fn active<'a>(waivers: &'a [Waiver], gate: &str, check: &str, day: i64) -> Option<&'a Waiver> {
    waivers
        .iter()
        .find(|w| w.gate == gate && w.check == check && w.created <= day && day <= w.expires)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(parse_date("2000-03-01"), Some(11_017));
        assert_eq!(
            parse_date("2026-11-25").unwrap() - parse_date("2026-11-11").unwrap(),
            14
        );
        assert_eq!(parse_date("2026-13-01"), None);
        assert!(today() > parse_date("2026-01-01").unwrap());
    }

    #[test]
    fn waivers_expire_and_are_bounded() {
        let dir = std::env::temp_dir().join(format!("xtask-waivers-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("w.yaml");
        let entry = |created: &str, expires: &str| {
            format!(
                "waivers:\n  - id: W-1\n    gate: perf\n    check: ttfa_p95\n    reason: slow box\n    owner: team\n    created: \"{created}\"\n    expires: \"{expires}\"\n    compensating_control: median tracked\n"
            )
        };
        std::fs::write(&p, entry("2026-11-25", "2026-12-09")).unwrap();
        let w = load(&p).unwrap();
        let day = parse_date("2026-12-01").unwrap();
        assert!(active(&w, "perf", "ttfa_p95", day).is_some());
        assert!(active(&w, "perf", "api_p95", day).is_none());
        assert!(active(&w, "perf", "ttfa_p95", parse_date("2026-12-10").unwrap()).is_none());
        std::fs::write(&p, entry("2026-11-25", "2026-12-10")).unwrap();
        assert!(load(&p).unwrap_err().contains("longer than"));
        std::fs::write(&p, "waivers:\n  - id: W-2\n    gate: perf\n").unwrap();
        assert!(load(&p).is_err());
        assert!(load(&dir.join("none.yaml")).unwrap().is_empty());
    }
}
