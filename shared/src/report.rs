//! The table every demo ends with, and the same figures as JSON.
//!
//! A demo's last screen should be readable in five seconds: the settings that produced the
//! figures, one row per strategy, and a conclusion the demo computed from those figures (never a
//! sentence written in advance, because the numbers change with the flags and the machine).
//! `--format markdown` prints the same report for the book (a real table a browser can fit or
//! scroll, the conclusion as a paragraph) and `--format json` for scripts.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{CellAlignment, Table};
use serde::{Serialize, Serializer};

/// How a demo prints its report (`--format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A table for the terminal, with progress bars while it runs.
    #[default]
    Text,
    /// A Markdown table and paragraphs, as the book includes them.
    Markdown,
    /// The figures as JSON, for scripts.
    Json,
}

impl Format {
    /// Whether progress bars belong with this format: only on the terminal's.
    pub fn progress(self) -> bool {
        self == Format::Text
    }
}

/// A row of a demo's table: a struct with its own headers and formatted cells.
pub trait Row: Serialize {
    /// The column headers.
    fn headers() -> Vec<&'static str>;
    /// This row's cells, formatted for reading, in the order of the headers.
    fn cells(&self) -> Vec<String>;
}

/// A demo's report: what ran, the figures, and what they say.
#[derive(Serialize)]
pub struct Report<R> {
    /// One line saying what was measured.
    pub title: String,
    /// The settings that produced the figures, as `name: value` pairs.
    #[serde(serialize_with = "as_map")]
    pub settings: Vec<(String, String)>,
    /// One row per strategy or mode.
    pub rows: Vec<R>,
    /// Sentences computed from the rows.
    pub conclusion: String,
}

impl<R: Row> Report<R> {
    /// An empty report titled `title`.
    pub fn new(title: impl Into<String>) -> Self {
        Report {
            title: title.into(),
            settings: Vec::new(),
            rows: Vec::new(),
            conclusion: String::new(),
        }
    }

    /// Adds a setting to the line under the title.
    pub fn setting(&mut self, name: &str, value: impl ToString) -> &mut Self {
        self.settings.push((name.to_string(), value.to_string()));
        self
    }

    /// The report as text: title, settings, table, conclusion.
    pub fn to_text(&self) -> String {
        let mut table = Table::new();
        table.load_preset(UTF8_FULL_CONDENSED);
        table.set_header(R::headers());
        for row in &self.rows {
            table.add_row(row.cells());
        }
        for column in table.column_iter_mut().skip(1) {
            column.set_cell_alignment(CellAlignment::Right);
        }
        format!(
            "{}\n{}\n\n{table}\n\n{}\n",
            self.title,
            self.settings_line(" | "),
            self.conclusion
        )
    }

    /// The report as Markdown: the title in bold, the settings in italics, a table with the
    /// figures right-aligned, and the conclusion as a paragraph, so that a page can wrap the
    /// sentences and fit or scroll the table.
    pub fn to_markdown(&self) -> String {
        let line = |cells: Vec<String>| format!("| {} |\n", cells.join(" | "));
        let headers: Vec<String> = R::headers().into_iter().map(markdown_cell).collect();
        let rule = (0..headers.len())
            .map(|i| if i == 0 { ":--" } else { "--:" }.to_string())
            .collect();
        let mut table = line(headers);
        table.push_str(&line(rule));
        for row in &self.rows {
            // A figure and its unit stay on one line (`8.29 ms`, not `8.29` above `ms`) however
            // narrow the column gets: the space between them is a non-breaking one.
            let cells = row.cells().into_iter().enumerate().map(|(i, cell)| {
                let cell = markdown_cell(cell);
                if i == 0 {
                    cell
                } else {
                    cell.replace(' ', "\u{a0}")
                }
            });
            table.push_str(&line(cells.collect()));
        }
        // A flag's two hyphens stay two: the book's typography would make them a dash, which a
        // learner copying `--release` into a shell would find does not work.
        let dashes = |text: String| text.replace("--", "-\\-");
        format!(
            "**{}**\n\n*{}*\n\n{table}\n{}\n",
            dashes(markdown_cell(self.title.clone())),
            dashes(markdown_cell(self.settings_line(" · "))),
            dashes(self.conclusion.clone())
        )
    }

    /// The settings as `name: value` pairs joined by `separator`, the line under the title, and
    /// last the build that measured them ([`BUILD`]).
    fn settings_line(&self, separator: &str) -> String {
        let pairs: Vec<String> = self
            .settings
            .iter()
            .map(|(name, value)| format!("{name}: {value}"))
            .chain([format!("build: {BUILD}")])
            .collect();
        pairs.join(separator)
    }

    /// The report in `format`.
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Text => self.to_text(),
            Format::Markdown => self.to_markdown(),
            Format::Json => serde_json::to_string_pretty(self).expect("reports serialize") + "\n",
        }
    }

    /// Prints the report in `format` on stdout.
    pub fn print(&self, format: Format) {
        print!("{}", self.render(format));
    }
}

/// A cell's text with the characters Markdown would read as table syntax or emphasis escaped.
fn markdown_cell(text: impl Into<String>) -> String {
    let text = text.into();
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '|' | '*' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn as_map<S: Serializer>(pairs: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(pairs.iter().map(|(k, v)| (k, v)))
}

/// Which build measured a report's figures. An unoptimised build is several times slower in the
/// code around every Redis call, which changes ratios as well as latencies (two-tier's lead over
/// Redis alone read 4.3x in debug where release read 10.3x), so a report says which it was.
pub const BUILD: &str = if cfg!(debug_assertions) {
    "debug (figures differ from release, ratios too: add --release for figures to quote)"
} else {
    "release"
};

/// The share of requests above which Redis failures make a comparison meaningless: past it, the
/// figures measure the fallback to the database more than the pattern.
pub const DISTURBED_ABOVE: f64 = 0.05;

/// The sentence a conclusion starts with when Redis failed on more than [`DISTURBED_ABOVE`] of
/// `requests`, and `None` when the run was clean enough to compare.
pub fn disturbed(redis_errors: u64, requests: u64) -> Option<String> {
    let share = redis_errors as f64 / requests.max(1) as f64;
    (share > DISTURBED_ABOVE).then(|| {
        format!(
            "Redis failed {} times, {} of the requests: too many for this comparison to mean \
             anything, since those requests measured the fallback to the database, not the \
             pattern. Fix Redis (see the errors above) and run again.",
            count(redis_errors),
            percent(share)
        )
    })
}

/// The sentence a conclusion starts with when some rows were measured a second time because
/// Redis went away during the first ([`crate::comeback::again_after_outage`]); `None` when none
/// was.
pub fn measured_again(rows: &[&str]) -> Option<String> {
    (!rows.is_empty()).then(|| {
        format!(
            "Redis failed during the first try of {}, measured again once it was back: those \
             rows are from the second try. ",
            rows.join(", ")
        )
    })
}

/// Microseconds as a short human figure: `85 µs`, `2.31 ms`, `1.20 s`.
pub fn micros(us: u64) -> String {
    match us {
        0..1_000 => format!("{us} µs"),
        1_000..1_000_000 => format!("{:.2} ms", us as f64 / 1e3),
        _ => format!("{:.2} s", us as f64 / 1e6),
    }
}

/// A count with thousands separators: `12,345`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A ratio as a percentage with one decimal: `93.4%`.
pub fn percent(ratio: f64) -> String {
    format!("{:.1}%", ratio * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Line {
        name: &'static str,
        queries: u64,
    }

    impl Row for Line {
        fn headers() -> Vec<&'static str> {
            vec!["strategy", "db queries"]
        }
        fn cells(&self) -> Vec<String> {
            vec![self.name.to_string(), count(self.queries)]
        }
    }

    #[test]
    fn text_and_json_carry_the_same_figures() {
        let mut report = Report::new("Demo");
        report
            .setting("requests", 1000)
            .setting("db latency", "2 ms");
        report.rows.push(Line {
            name: "database only",
            queries: 1000,
        });
        report.rows.push(Line {
            name: "cache-aside",
            queries: 12,
        });
        report.conclusion = "cache-aside asked the database 83x less".into();

        let text = report.to_text();
        assert!(text.contains("requests: 1000 | db latency: 2 ms"), "{text}");
        assert!(
            text.contains("database only") && text.contains("1,000"),
            "{text}"
        );
        let json: serde_json::Value = serde_json::to_value(&report).unwrap();
        assert_eq!(json["settings"]["db latency"], "2 ms");
        assert_eq!(json["rows"][1]["queries"], 12);

        let markdown = report.render(Format::Markdown);
        assert!(
            markdown.contains("| strategy | db queries |\n| :-- | --: |\n"),
            "a header row and an alignment row: {markdown}"
        );
        assert!(
            markdown.contains("| database only | 1,000 |\n| cache-aside | 12 |\n"),
            "{markdown}"
        );
        assert!(
            markdown.contains(&format!(
                "*requests: 1000 · db latency: 2 ms · build: {}*",
                BUILD.replace("--", "-\\-")
            )),
            "{markdown}"
        );
        assert!(
            markdown.ends_with("\ncache-aside asked the database 83x less\n"),
            "{markdown}"
        );
    }

    #[test]
    fn a_figure_keeps_its_unit_on_its_line() {
        #[derive(Serialize)]
        struct Timed;
        impl Row for Timed {
            fn headers() -> Vec<&'static str> {
                vec!["strategy", "p50"]
            }
            fn cells(&self) -> Vec<String> {
                vec!["no cache".into(), micros(8_290)]
            }
        }
        let mut report = Report::new("Demo");
        report.rows.push(Timed);
        let markdown = report.to_markdown();
        assert!(
            markdown.contains("| no cache | 8.29\u{a0}ms |"),
            "the label keeps its spaces, the figure a non-breaking one: {markdown}"
        );
    }

    #[test]
    fn markdown_cells_escape_what_markdown_would_read() {
        assert_eq!(markdown_cell("a|b"), "a\\|b");
        assert_eq!(markdown_cell("*p99*"), "\\*p99\\*");
        assert_eq!(markdown_cell("redis_errors"), "redis\\_errors");
        assert_eq!(markdown_cell("2.31 ms"), "2.31 ms");
    }

    #[test]
    fn a_disturbed_run_says_so_and_a_clean_one_does_not() {
        assert_eq!(disturbed(50, 1_000), None, "5% is the limit, not past it");
        let text = disturbed(51, 1_000).unwrap();
        assert!(text.contains("51 times, 5.1%"), "{text}");
        assert_eq!(disturbed(0, 0), None);
    }

    #[test]
    fn figures_format_for_reading() {
        assert_eq!(micros(85), "85 µs");
        assert_eq!(micros(2_310), "2.31 ms");
        assert_eq!(micros(1_200_000), "1.20 s");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(count(12), "12");
        assert_eq!(percent(0.934), "93.4%");
    }
}
