//! `codex-helper doctor [--json] [--offline] [--port N]`: what is off and how to fix it (see
//! [`crate::doctor`]). Exits non-zero when a finding is an error.

use crate::config::Homes;
use crate::doctor::{self, Finding};

#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    #[arg(long)]
    json: bool,
    /// Ask no relay (skips the clock check).
    #[arg(long)]
    offline: bool,
    /// The port the helper serves on (default: the one Codex points at, else the running
    /// helper's, else 3211).
    #[arg(long)]
    port: Option<u16>,
}

pub fn run(args: DoctorArgs) -> anyhow::Result<()> {
    let homes = Homes::from_env()?;
    let scope = super::doctor_facts::Scope {
        port: args.port,
        offline: args.offline,
    };
    let facts = super::doctor_facts::gather(&homes, &scope);
    let findings = doctor::findings(&facts);
    let errors = findings
        .iter()
        .filter(|f| f.severity == doctor::Severity::Error)
        .count();
    if args.json {
        let report = serde_json::json!({
            "ok": errors == 0,
            "errors": errors,
            "findings": findings,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", text(&findings));
    }
    if doctor::has_error(&findings) {
        anyhow::bail!("doctor found {errors} error(s)");
    }
    Ok(())
}

/// The findings as lines for a terminal (pure).
fn text(findings: &[Finding]) -> String {
    let mut out = String::new();
    for f in findings {
        out.push_str(&format!(
            "{:<7} {}: {}\n",
            f.severity.as_str(),
            f.id,
            f.message
        ));
        if let Some(fix) = &f.fix {
            out.push_str(&format!("        fix: {fix}\n"));
        }
    }
    if !doctor::has_error(findings) {
        out.push_str("no errors found\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Severity;

    #[test]
    fn each_finding_is_a_line_with_its_fix_below() {
        let findings = [
            Finding {
                id: "port.conflict",
                severity: Severity::Error,
                message: "port 3211 is taken by pid 7 (nginx), not by codex-helper".into(),
                fix: Some("stop that program".into()),
            },
            Finding {
                id: "ledger.size",
                severity: Severity::Info,
                message: "the ledger is 3 MiB".into(),
                fix: None,
            },
        ];
        assert_eq!(
            text(&findings),
            "error   port.conflict: port 3211 is taken by pid 7 (nginx), not by codex-helper\n        fix: stop that program\n\
             info    ledger.size: the ledger is 3 MiB\n"
        );
        assert!(text(&findings[1..]).ends_with("no errors found\n"));
    }
}
