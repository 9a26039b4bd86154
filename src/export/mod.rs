//! Every file `--out` writes, one small type per file behind [`Exporter`],
//! and the registries the commands read to know which files there are.
//!
//! A command never names its output files itself: it asks a registry
//! ([`run_files`], [`sweep_files`], [`capacity_files`]) for the exporters,
//! checks every name before it starts, renders the ones that apply and
//! writes them as one [`OutputSet`] (all written, or none replaced). So a
//! new output format is one file here and one line in its registry, and the
//! `--files` selection ([`select`]) knows about it at once.
//!
//! Rendering can fail (a chart that cannot be drawn), so [`Exporter::render`]
//! returns a [`Result`]; nothing is written until every file has rendered.
//! The trait is generic over what an exporter reads: a run's files read a
//! [`Run`], the data files of a run need only its [`Report`] (so they serve
//! both, see [`report_files`]), a sweep's read a [`SweepReport`] and a
//! capacity search's a [`Capacity`].

pub mod capacity_csv;
pub mod capacity_json;
pub mod chart_png;
pub mod chart_svg;
pub mod report_html;
pub mod report_json;
pub mod select;
pub mod sweep_csv;
pub mod sweep_json;
pub mod sweep_png;
pub mod sweep_svg;
pub mod timeseries_csv;

use std::path::Path;

use crate::chart::html::Source;
use crate::chart::{self, PortUsage, CHARTS};
use crate::output::OutputSet;
use crate::report::Report;
use crate::sweep::capacity::Capacity;
use crate::sweep::output::SweepReport;

/// Why a file could not be rendered; shown as the command's error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportError(pub String);

impl std::fmt::Display for ExportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ExportError {}

impl From<String> for ExportError {
    fn from(s: String) -> Self {
        ExportError(s)
    }
}

/// What kind of file an exporter writes: `--charts` chooses by kind, and
/// any kind but [`Kind::Data`] draws charts, so the run records port usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Figures as JSON or CSV.
    Data,
    /// A chart as PNG.
    Png,
    /// A chart as SVG.
    Svg,
    /// The HTML page.
    Html,
}

/// Turns an input (`I`: a run, a sweep, a capacity search) into the bytes
/// of one file.
pub trait Exporter<I: ?Sized>: Sync {
    /// The file's name inside `--out DIR`.
    fn file_name(&self) -> String;
    fn kind(&self) -> Kind {
        Kind::Data
    }
    /// Whether this input has anything to show in the file (e.g. a chart
    /// of destinations needs several). A file that does not apply is not
    /// written, though its name is checked before the run like the others.
    fn applies(&self, _input: &I) -> bool {
        true
    }
    fn render(&self, input: &I) -> Result<Vec<u8>, ExportError>;
}

/// What a run's files are rendered from.
pub struct Run<'a> {
    pub report: &'a Report,
    /// Port usage over time, when the run recorded it (for charts).
    pub usage: Option<&'a PortUsage>,
    /// Where the run came from, echoed on `report.html`.
    pub source: Source<'a>,
}

impl Run<'_> {
    /// What the charts draw from.
    pub fn charts(&self) -> chart::Input<'_> {
        chart::Input {
            report: self.report,
            usage: self.usage,
        }
    }
}

impl AsRef<Report> for Run<'_> {
    fn as_ref(&self) -> &Report {
        self.report
    }
}

impl AsRef<Report> for Report {
    fn as_ref(&self) -> &Report {
        self
    }
}

/// An exporter of a run's files.
pub type RunExporter = dyn for<'a> Exporter<Run<'a>>;

/// The files made from a report alone (no charts): they render from a
/// [`Report`] as well as from a [`Run`].
pub fn report_files() -> Vec<Box<dyn Exporter<Report>>> {
    vec![
        Box::new(report_json::ReportJson),
        Box::new(timeseries_csv::TimeseriesCsv),
    ]
}

/// Every file `run --out` can write, in the order they are written.
pub fn run_files() -> Vec<Box<RunExporter>> {
    let mut files: Vec<Box<RunExporter>> = vec![
        Box::new(report_json::ReportJson),
        Box::new(timeseries_csv::TimeseriesCsv),
    ];
    for c in CHARTS {
        files.push(Box::new(chart_png::ChartPng(*c)));
        files.push(Box::new(chart_svg::ChartSvg(*c)));
    }
    files.push(Box::new(report_html::ReportHtml));
    files
}

/// Every file `sweep --out` and `merge --out` write.
pub fn sweep_files() -> Vec<Box<dyn Exporter<SweepReport>>> {
    vec![
        Box::new(sweep_json::SweepJson),
        Box::new(sweep_csv::SweepCsv),
        Box::new(sweep_png::SweepPng),
        Box::new(sweep_svg::SweepSvg),
    ]
}

/// Every file `capacity --out` writes.
pub fn capacity_files() -> Vec<Box<dyn Exporter<Capacity>>> {
    vec![
        Box::new(capacity_json::CapacityJson),
        Box::new(capacity_csv::CapacityCsv),
    ]
}

/// The file names of `files`, in order: what `--out DIR` is checked for
/// before anything runs.
pub fn names<I: ?Sized, E: Exporter<I> + ?Sized>(files: &[Box<E>]) -> Vec<String> {
    files.iter().map(|e| e.file_name()).collect()
}

/// Render each of `files` that applies to `input` into `set`, as a file
/// of `dir`, in order. Stops at the first that cannot be rendered.
pub fn render_into<I: ?Sized, E: Exporter<I> + ?Sized>(
    set: &mut OutputSet,
    dir: &Path,
    files: &[Box<E>],
    input: &I,
) -> Result<(), ExportError> {
    for e in files.iter().filter(|e| e.applies(input)) {
        set.add(dir.join(e.file_name()), e.render(input)?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn distinct(names: Vec<String>) {
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len(), "{names:?}");
    }

    #[test]
    fn registries_name_each_file_once() {
        distinct(names(&run_files()));
        distinct(names(&sweep_files()));
        distinct(names(&capacity_files()));
        assert_eq!(
            names(&sweep_files()),
            ["sweep.json", "sweep.csv", "sweep.png", "sweep.svg"]
        );
        assert_eq!(names(&capacity_files()), ["capacity.json", "capacity.csv"]);
        // The report-only files open the run's registry, in the same order.
        let run = names(&run_files());
        assert_eq!(&run[..2], names(&report_files()).as_slice());
        assert_eq!(run.last().map(String::as_str), Some("report.html"));
    }

    #[test]
    fn a_failure_to_render_is_an_error_not_a_panic() {
        struct Broken;
        impl Exporter<str> for Broken {
            fn file_name(&self) -> String {
                "broken.txt".into()
            }
            fn render(&self, input: &str) -> Result<Vec<u8>, ExportError> {
                Err(ExportError(format!("cannot draw {input}")))
            }
        }
        let dir = std::env::temp_dir().join("portsim-export-never-written");
        let mut set = OutputSet::new();
        let files: Vec<Box<Broken>> = vec![Box::new(Broken)];
        let e = render_into(&mut set, &dir, &files, "x").unwrap_err();
        assert_eq!(e.to_string(), "cannot draw x");
        assert!(!dir.exists());
    }
}
