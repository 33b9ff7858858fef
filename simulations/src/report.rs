//! A run's report: figures and pass/fail checks, printed for a person and
//! written as JSON and Markdown.

use std::path::Path;

use serde::Serialize;
use serde_json::Value;

/// One printed figure.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    pub section: String,
    pub name: String,
    pub value: String,
}

/// One pass/fail check.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: String,
    pub started_at: String,
    pub params: Value,
    pub figures: Vec<Figure>,
    pub checks: Vec<Check>,
    /// Anomaly text -> users that reported it.
    pub anomalies: Vec<(String, usize)>,
    /// Problems of the run itself (server would not start, worker lost).
    pub run_errors: Vec<String>,
    /// Machine-readable metrics (scenario-specific).
    pub data: Value,
    pub charts: Vec<String>,
}

impl Report {
    pub fn new(scenario: &str, params: Value) -> Self {
        Self {
            scenario: scenario.to_string(),
            started_at: crate::timefmt::rfc3339_now(),
            params,
            figures: Vec::new(),
            checks: Vec::new(),
            anomalies: Vec::new(),
            run_errors: Vec::new(),
            data: Value::Null,
            charts: Vec::new(),
        }
    }

    pub fn figure(&mut self, section: &str, name: &str, value: impl std::fmt::Display) {
        self.figures.push(Figure {
            section: section.into(),
            name: name.into(),
            value: value.to_string(),
        });
    }

    pub fn check(&mut self, name: &str, passed: bool, detail: impl Into<String>) {
        self.checks.push(Check {
            name: name.into(),
            passed,
            detail: detail.into(),
        });
    }

    /// Figures grouped by section, sections in order of first appearance.
    fn sections(&self) -> Vec<(&str, Vec<&Figure>)> {
        let mut out: Vec<(&str, Vec<&Figure>)> = Vec::new();
        for f in &self.figures {
            match out.iter_mut().find(|(s, _)| *s == f.section) {
                Some((_, v)) => v.push(f),
                None => out.push((&f.section, vec![f])),
            }
        }
        out
    }

    pub fn passed(&self) -> bool {
        self.run_errors.is_empty() && self.checks.iter().all(|c| c.passed)
    }

    /// The human summary on stdout.
    pub fn print(&self) {
        println!("\n=== simulate {} ({}) ===", self.scenario, self.started_at);
        for (section, figures) in self.sections() {
            println!("\n[{section}]");
            for f in figures {
                println!("  {:<44} {}", f.name, f.value);
            }
        }
        println!("\n[checks]");
        for c in &self.checks {
            println!(
                "  {} {:<42} {}",
                if c.passed { "PASS" } else { "FAIL" },
                c.name,
                c.detail
            );
        }
        if !self.anomalies.is_empty() {
            println!("\n[anomalies: unexpected frames/responses, users affected]");
            for (a, n) in self.anomalies.iter().take(20) {
                println!("  {n:>7}  {a}");
            }
        }
        for e in &self.run_errors {
            println!("  RUN ERROR: {e}");
        }
        println!("\nresult: {}", if self.passed() { "PASS" } else { "FAIL" });
    }

    pub fn markdown(&self) -> String {
        let mut md = format!(
            "# simulate {}\n\nStarted {}.\n\nParameters: `{}`\n",
            self.scenario, self.started_at, self.params
        );
        for (section, figures) in self.sections() {
            md.push_str(&format!(
                "\n## {section}\n\n| figure | value |\n|---|---|\n"
            ));
            for f in figures {
                md.push_str(&format!(
                    "| {} | {} |\n",
                    f.name,
                    f.value.replace('|', "\\|")
                ));
            }
        }
        md.push_str("\n## Checks\n\n| check | result | detail |\n|---|---|---|\n");
        for c in &self.checks {
            let result = if c.passed { "pass" } else { "**FAIL**" };
            md.push_str(&format!(
                "| {} | {result} | {} |\n",
                c.name,
                c.detail.replace('|', "\\|")
            ));
        }
        if !self.anomalies.is_empty() {
            md.push_str("\n## Anomalies\n\n| users | what |\n|---|---|\n");
            for (a, n) in &self.anomalies {
                md.push_str(&format!(
                    "| {n} | `{}` |\n",
                    a.replace('|', "\\|").replace('`', "'")
                ));
            }
        }
        if !self.run_errors.is_empty() {
            md.push_str("\n## Run errors\n\n");
            for e in &self.run_errors {
                md.push_str(&format!("- {e}\n"));
            }
        }
        if !self.charts.is_empty() {
            md.push_str("\n## Charts\n\n");
            for c in &self.charts {
                let name = Path::new(c)
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default();
                md.push_str(&format!("![{name}]({c})\n\n"));
            }
        }
        md.push_str(&format!(
            "\nResult: **{}**\n",
            if self.passed() { "PASS" } else { "FAIL" }
        ));
        md
    }

    /// Writes the JSON and Markdown files (creating parent directories).
    pub fn write(&self, json: &Path, markdown: &Path) -> Result<(), String> {
        for p in [json, markdown] {
            if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("create {}: {e}", dir.display()))?;
            }
        }
        let text = serde_json::to_string_pretty(self).map_err(|e| format!("encode report: {e}"))?;
        std::fs::write(json, text).map_err(|e| format!("write {}: {e}", json.display()))?;
        std::fs::write(markdown, self.markdown())
            .map_err(|e| format!("write {}: {e}", markdown.display()))?;
        Ok(())
    }
}

/// `1234.5` -> `"1234.5"` with one decimal; for figures.
pub fn f1(x: f64) -> String {
    format!("{x:.1}")
}
