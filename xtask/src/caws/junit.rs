//! A JUnit XML reader for what pytest and schemathesis write: each `<testcase>`
//! with its outcome. Enough XML for those two writers, no more: attributes in
//! double quotes, the five predefined entities and numeric references.

use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    Failed,
    Skipped,
}

/// Test id (`classname::name`) -> outcome, sorted by id.
pub type Cases = BTreeMap<String, Outcome>;

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let Some(end) = tail.find(';') else {
            out.push_str(tail);
            return out;
        };
        let ent = &tail[1..end];
        let ch = match ent {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => ent
                .strip_prefix("#x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| ent.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match ch {
            Some(c) => out.push(c),
            None => out.push_str(&tail[..=end]),
        }
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    out
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let key = format!(" {name}=\"");
    let start = tag.find(&key)? + key.len();
    let len = tag[start..].find('"')?;
    Some(unescape(&tag[start..start + len]))
}

/// Parse the test cases of a JUnit report. Errors when there are none at all, so
/// that an empty or truncated report cannot read as a pass.
pub fn parse(xml: &str) -> Result<Cases, String> {
    let mut cases = Cases::new();
    let mut rest = xml;
    while let Some(i) = rest.find("<testcase") {
        rest = &rest[i..];
        let tag_end = rest.find('>').ok_or("unterminated <testcase> tag")?;
        let tag = &rest[..tag_end];
        let (body, next) = if tag.ends_with('/') {
            ("", &rest[tag_end + 1..])
        } else {
            let close = rest.find("</testcase>").ok_or("unterminated <testcase>")?;
            (
                &rest[tag_end + 1..close],
                &rest[close + "</testcase>".len()..],
            )
        };
        let name = attr(tag, "name").ok_or("<testcase> without a name")?;
        let id = match attr(tag, "classname") {
            Some(c) if !c.is_empty() => format!("{c}::{name}"),
            _ => name,
        };
        let outcome = if body.contains("<failure") || body.contains("<error") {
            Outcome::Failed
        } else if body.contains("<skipped") {
            Outcome::Skipped
        } else {
            Outcome::Passed
        };
        // A case reported twice (a setup error after a pass) keeps the worse outcome.
        let slot = cases.entry(id).or_insert(outcome);
        if outcome == Outcome::Failed {
            *slot = Outcome::Failed;
        }
        rest = next;
    }
    // A suite-level error (collection failure) has no test case of its own.
    if cases.is_empty() {
        return Err("the report holds no test case".into());
    }
    Ok(cases)
}

/// The `n` slowest test cases of a report (`time` attribute, seconds), slowest first:
/// where a long suite spends its time.
pub fn slowest(xml: &str, n: usize) -> Vec<(String, f64)> {
    let mut times: Vec<(String, f64)> = xml
        .split("<testcase")
        .skip(1)
        .filter_map(|t| {
            let tag = &t[..t.find('>')?];
            let secs = attr(tag, "time")?.parse().ok()?;
            Some((attr(tag, "name")?, secs))
        })
        .collect();
    times.sort_by(|a, b| b.1.total_cmp(&a.1));
    times.truncate(n);
    times
}

/// Tests whose outcome differs between runs (missing from a run counts as differing).
pub fn flaky(runs: &[Cases]) -> Vec<String> {
    let mut ids: Vec<&String> = runs.iter().flat_map(|r| r.keys()).collect();
    ids.sort();
    ids.dedup();
    ids.into_iter()
        .filter(|id| {
            let first = runs[0].get(*id);
            runs.iter().any(|r| r.get(*id) != first)
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PYTEST: &str = r#"<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" errors="0" failures="1" skipped="1" tests="4">
<testcase classname="tests.e2e.test_edge" name="test_a[wav]" time="0.1" />
<testcase classname="tests.e2e.test_edge" name="test_b&amp;&#34;c&#x27;" time="0.2"><failure message="assert 1 == 2">boom</failure></testcase>
<testcase classname="tests.e2e.test_edge" name="test_c" time="0.0"><skipped type="pytest.skip" message="no gpu">x</skipped></testcase>
<testcase classname="tests.e2e.test_edge" name="test_d" time="0.0"><error message="fixture">e</error></testcase>
</testsuite></testsuites>"#;

    #[test]
    fn reads_outcomes_and_names() {
        let c = parse(PYTEST).unwrap();
        assert_eq!(c.len(), 4);
        assert_eq!(c["tests.e2e.test_edge::test_a[wav]"], Outcome::Passed);
        assert_eq!(c["tests.e2e.test_edge::test_b&\"c'"], Outcome::Failed);
        assert_eq!(c["tests.e2e.test_edge::test_c"], Outcome::Skipped);
        assert_eq!(c["tests.e2e.test_edge::test_d"], Outcome::Failed);
    }

    #[test]
    fn slowest_cases_come_first() {
        let s = slowest(PYTEST, 2);
        assert_eq!(
            s,
            [
                ("test_b&\"c'".to_string(), 0.2),
                ("test_a[wav]".to_string(), 0.1)
            ]
        );
        assert!(slowest("", 3).is_empty());
    }

    #[test]
    fn an_empty_or_broken_report_is_an_error() {
        assert!(parse("<testsuites><testsuite tests=\"0\"/></testsuites>").is_err());
        assert!(parse("<testcase name=\"x\"><failure>").is_err());
        assert!(parse("").is_err());
    }

    #[test]
    fn flaky_tests_are_those_that_change() {
        let a = parse(PYTEST).unwrap();
        let mut b = a.clone();
        assert!(flaky(&[a.clone(), b.clone()]).is_empty());
        b.insert("tests.e2e.test_edge::test_a[wav]".into(), Outcome::Failed);
        b.remove("tests.e2e.test_edge::test_c");
        assert_eq!(
            flaky(&[a, b]),
            [
                "tests.e2e.test_edge::test_a[wav]",
                "tests.e2e.test_edge::test_c"
            ]
        );
    }
}
