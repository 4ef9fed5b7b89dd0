//! The validate gate: the working spec against its schema plus the original
//! validator's extra rules, the contract files it names, the tier policy, the waivers.

use super::{POLICY, Planted, Report, SPEC, SPEC_SCHEMA, WAIVERS, check, json_file, planted, yaml};
use crate::schema;
use crate::waivers::{self, Waiver};
use serde_json::{Value, json};
use std::path::Path;

pub struct Validate;

impl super::Gate for Validate {
    fn name(&self) -> &'static str {
        "validate"
    }
    fn run(&self, w: &[Waiver], _args: &[String]) -> Result<bool, String> {
        gate_validate(w)
    }
    /// A spec with a bad id and a one-item scope.
    fn plant(&self, _scratch: &Path) -> Vec<Planted> {
        let spec = yaml(Path::new(SPEC)).and_then(|s| Ok((s, json_file(Path::new(SPEC_SCHEMA))?)));
        vec![match spec {
            Ok((mut spec, schema_v)) => {
                spec["id"] = json!("kokoro-1");
                spec["scope"]["in"] = json!(["only one thing"]);
                let errs = spec_errors(&spec, &schema_v);
                planted(
                    "a bad id and a one-item scope",
                    errs.len() >= 2,
                    errs.join("; "),
                )
            }
            Err(e) => planted("a broken spec", false, e),
        }]
    }
}

/// Schema plus the original validator's extra rules. Empty when valid.
pub fn spec_errors(spec: &Value, schema_v: &Value) -> Vec<String> {
    let mut errors = schema::validate(schema_v, spec);
    let tier = spec["risk_tier"].as_u64().unwrap_or(0);
    let contracts = spec["contracts"].as_array().map_or(0, Vec::len);
    let security = spec["non_functional"]["security"]
        .as_array()
        .map_or(0, Vec::len);
    if tier == 1 && (contracts == 0 || security == 0) {
        errors.push("tier 1 needs contracts and non_functional.security".into());
    }
    if tier == 2 {
        if !spec["non_functional"]["perf"].is_object() {
            errors.push("tier 2 needs non_functional.perf".into());
        }
        if spec["profile"] == "backend-api" && contracts == 0 {
            errors.push("tier 2 backend-api needs contracts".into());
        }
    }
    if spec["scope"]["in"].as_array().map_or(0, Vec::len) < 2 {
        errors.push("scope.in needs at least 2 items".into());
    }
    errors
}

fn gate_validate(w: &[Waiver]) -> Result<bool, String> {
    let mut g = Report::new("validate");
    let spec = yaml(Path::new(SPEC))?;
    let errors = spec_errors(&spec, &json_file(Path::new(SPEC_SCHEMA))?);
    g.checks
        .push(check("working_spec", errors.is_empty(), errors.join("; ")));
    let missing: Vec<String> = spec["contracts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["path"].as_str())
        .filter(|p| !Path::new(p).is_file())
        .map(String::from)
        .collect();
    g.checks.push(check(
        "contract_files",
        missing.is_empty(),
        missing.join(", "),
    ));
    let policy = json_file(Path::new(POLICY))?;
    let tier = spec["risk_tier"].to_string();
    g.checks.push(check(
        "tier_policy",
        policy["tiers"][&tier].is_object(),
        format!("tier {tier}"),
    ));
    let wv = waivers::load(Path::new(WAIVERS));
    g.checks.push(check(
        "waivers",
        wv.is_ok(),
        wv.map_or_else(|e| e, |v| format!("{} waiver(s)", v.len())),
    ));
    g.finish(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_project_spec_is_valid_and_a_broken_one_is_not() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let spec = yaml(&root.join(SPEC)).unwrap();
        let schema_v = json_file(&root.join(SPEC_SCHEMA)).unwrap();
        assert_eq!(spec_errors(&spec, &schema_v), Vec::<String>::new());
        let mut bad = spec.clone();
        bad["risk_tier"] = json!(2);
        bad["contracts"] = json!([]);
        bad["acceptance"][0]["id"] = json!("X1");
        let e = spec_errors(&bad, &schema_v);
        assert!(
            e.iter().any(|x| x.contains("backend-api needs contracts")),
            "{e:?}"
        );
        assert!(e.iter().any(|x| x.contains("does not match ^A")), "{e:?}");
    }
}
