//! What an experiment keeps of its runs, and its JSON report.
//!
//! An experiment hands every run, in seed order, to a [`ReportBuilder`]: it
//! adds the run to its set's [`Tally`], keeps the first failing runs and the
//! run the timeline charts, and streams the whole run to the JSON report.
//! Nothing else of a run is kept, so the memory is flat in the seeds.
//!
//! The JSON report is one document, written as the runs come:
//!
//! ```text
//! {"seeds":[[0,100]],"nodes":9,...,"sets":[
//!   {"name":"plugins","plugins":[],"runs":[{...},{...}],"summary":{...}}
//! ],"timeline":{...}}
//! ```
//!
//! [`merge`] reads such reports back, one run at a time, and feeds their
//! runs to a builder in seed order: the result is what one experiment over
//! all their seeds would have reported.

use std::fmt;
use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::compare::{self, CompareError, Comparison, Samples};
use super::{Seeds, Summary, Tally};
use crate::sim::{Recovery, SimConfig, SimRun, Violation};

/// The failing runs a set keeps for the printed list and the HTML report;
/// the JSON report has them all.
pub const KEPT_FAILING_RUNS: usize = 1_000;

/// What an experiment ran: enough to tell whether two reports can be
/// merged, and to replay any of their seeds.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Setup {
    /// The seed ranges run, each `[first, past the last]`, rising.
    pub seeds: Vec<[u64; 2]>,
    /// Nodes per cluster.
    pub nodes: usize,
    /// Zones.
    pub zones: usize,
    /// Shards.
    pub shards: u32,
    /// The fault profile.
    pub faults: String,
    /// Virtual time of faults per run, in nanoseconds.
    pub fault_window_ns: u64,
    /// Fuel of each plugin call.
    pub fuel: u64,
    /// Versions the logs keep, if bounded.
    pub retention: Option<u64>,
    /// The adversary's slot (or `all`), if any.
    pub adversary: Option<String>,
}

impl Setup {
    /// The setup of an experiment over `seeds` with `config`.
    pub fn new(seeds: &Seeds, config: &SimConfig) -> Self {
        Setup {
            seeds: vec![[seeds.0.start, seeds.0.end]],
            nodes: config.nodes,
            zones: config.zones,
            shards: config.shards,
            faults: config.profile.name.to_string(),
            fault_window_ns: u64::try_from(config.fault_window.as_nanos()).unwrap_or(u64::MAX),
            fuel: config.fuel,
            retention: config.retention,
            adversary: config.adversary.as_ref().map(ToString::to_string),
        }
    }

    /// The seed ranges as a reader writes them: `0..100, 200..300`.
    pub fn seed_ranges(&self) -> String {
        self.seeds.iter().map(|[a, b]| format!("{a}..{b}")).collect::<Vec<_>>().join(", ")
    }

    /// Seeds run.
    pub fn seed_count(&self) -> u64 {
        self.seeds.iter().map(|[a, b]| b.saturating_sub(*a)).sum()
    }

    /// The command that replays `seed` of the set with `plugins`, with its
    /// trace.
    pub fn replay(&self, plugins: &[String], seed: u64) -> String {
        let mut command = format!(
            "ratchet experiment --seeds {seed} --nodes {} --zones {} --shards {} --faults {} --fault-window {}",
            self.nodes,
            self.zones,
            self.shards,
            self.faults,
            humantime::format_duration(std::time::Duration::from_nanos(self.fault_window_ns))
        );
        if self.fuel != SimConfig::default().fuel {
            command.push_str(&format!(" --fuel {}", self.fuel));
        }
        if let Some(versions) = self.retention {
            command.push_str(&format!(" --retention {versions}"));
        }
        if let Some(slot) = &self.adversary {
            command.push_str(&format!(" --adversary {slot}"));
        }
        for spec in plugins {
            command.push_str(&format!(" --plugin {spec}"));
        }
        command.push_str(" --trace");
        command
    }

    /// What differs between two setups that a merge needs alike, if anything.
    fn differs_from(&self, other: &Setup) -> Option<String> {
        let fields = [
            ("nodes", self.nodes.to_string(), other.nodes.to_string()),
            ("zones", self.zones.to_string(), other.zones.to_string()),
            ("shards", self.shards.to_string(), other.shards.to_string()),
            ("faults", self.faults.clone(), other.faults.clone()),
            ("fault window (ns)", self.fault_window_ns.to_string(), other.fault_window_ns.to_string()),
            ("fuel", self.fuel.to_string(), other.fuel.to_string()),
            ("retention", format!("{:?}", self.retention), format!("{:?}", other.retention)),
            ("adversary", format!("{:?}", self.adversary), format!("{:?}", other.adversary)),
        ];
        fields.into_iter().find(|(_, a, b)| a != b).map(|(field, a, b)| format!("{field} {a} against {b}"))
    }
}

/// One plugin set of a report: its name and its `SLOT=FILE` overrides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetHead {
    /// The set's name.
    pub name: String,
    /// Its overrides.
    pub plugins: Vec<String>,
}

/// A run that broke an invariant, as the report lists it.
#[derive(Clone, Debug)]
pub struct FailingRun {
    /// The seed.
    pub seed: u64,
    /// The adversary's slot, in an adversarial run.
    pub adversary: Option<String>,
    /// What the checker found.
    pub violations: Vec<Violation>,
}

/// What a report keeps of one plugin set.
#[derive(Clone, Debug)]
pub struct SetOutcome {
    /// The set.
    pub head: SetHead,
    /// Its figures.
    pub tally: Tally,
    /// Its first failing runs, at most [`KEPT_FAILING_RUNS`].
    pub failing: Vec<FailingRun>,
    /// Failing runs past those.
    pub failing_not_kept: usize,
    /// Its per-seed figures, for [`Report::comparison`].
    pub samples: Samples,
}

impl SetOutcome {
    fn new(head: SetHead) -> Self {
        SetOutcome { tally: Tally::new(&head.name), head, failing: Vec::new(), failing_not_kept: 0, samples: Samples::default() }
    }

    fn add(&mut self, run: &SimRun) {
        self.tally.add(run);
        self.samples.add(run);
        if run.violations.is_empty() {
            return;
        }
        if self.failing.len() < KEPT_FAILING_RUNS {
            self.failing.push(FailingRun { seed: run.seed, adversary: run.adversary.clone(), violations: run.violations.clone() });
        } else {
            self.failing_not_kept += 1;
        }
    }

    /// The set's summary.
    pub fn summary(&self) -> Summary {
        self.tally.summary()
    }
}

/// The per-phase timeline of one seed.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Timeline {
    /// The set it was run with.
    pub set: String,
    /// The seed.
    pub seed: u64,
    /// Its recoveries, the boot included.
    pub recoveries: Vec<Recovery>,
}

impl Timeline {
    fn of(set: &str, run: &SimRun) -> Self {
        Timeline { set: set.to_string(), seed: run.seed, recoveries: run.recoveries.clone() }
    }
}

/// Picks the seed the report charts: the one asked for, else the first
/// failing seed of any set, else the first seed of the first set.
#[derive(Debug, Default)]
struct TimelinePick {
    wanted: Option<u64>,
    asked: Option<Timeline>,
    first_failing: Option<Timeline>,
    first: Option<Timeline>,
}

impl TimelinePick {
    fn see(&mut self, set: &str, run: &SimRun) {
        if self.wanted == Some(run.seed) && self.asked.is_none() {
            self.asked = Some(Timeline::of(set, run));
        }
        if !run.violations.is_empty() && self.first_failing.is_none() {
            self.first_failing = Some(Timeline::of(set, run));
        }
        if self.first.is_none() {
            self.first = Some(Timeline::of(set, run));
        }
    }

    fn picked(self) -> Option<Timeline> {
        match self.wanted {
            Some(_) => self.asked,
            None => self.first_failing.or(self.first),
        }
    }
}

/// Why a report could not be written, read or merged.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The file could not be written or read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a complete report of `ratchet experiment`.
    #[error("{} is not a complete experiment report (written by `ratchet experiment --json`): {source}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What the parser found.
        source: serde_json::Error,
    },
    /// A report's runs disagree with its setup.
    #[error("{}: {reason}", path.display())]
    Runs {
        /// The file.
        path: PathBuf,
        /// What disagrees.
        reason: String,
    },
    /// A value could not be written as JSON.
    #[error("cannot write {} as JSON: {source}", path.display())]
    Encode {
        /// The file.
        path: PathBuf,
        /// Why.
        source: serde_json::Error,
    },
    /// The merged report would be written over one of its parts.
    #[error("the merged report would overwrite {}, one of the reports merged: write it elsewhere", .0.display())]
    Overwrite(PathBuf),
    /// Nothing to merge.
    #[error("no report to merge")]
    Empty,
    /// Two reports cannot be added up.
    #[error("cannot merge {} with {}: {reason}", first.display(), second.display())]
    Mismatch {
        /// One report.
        first: PathBuf,
        /// The other.
        second: PathBuf,
        /// What differs.
        reason: String,
    },
}

/// The JSON report, written as the runs come.
struct JsonWriter {
    path: PathBuf,
    out: BufWriter<File>,
    /// Runs written in the set being written.
    runs_in_set: usize,
    sets: usize,
}

impl JsonWriter {
    fn create(path: &Path, setup: &Setup) -> Result<Self, ReportError> {
        let file = File::create(path).map_err(|source| ReportError::Io { path: path.to_path_buf(), source })?;
        let mut writer = JsonWriter { path: path.to_path_buf(), out: BufWriter::new(file), runs_in_set: 0, sets: 0 };
        // The setup's fields open the document; the sets follow.
        let head = writer.json(setup)?;
        let open = head.strip_suffix('}').unwrap_or(&head).to_string();
        writer.write(&format!("{open},\"sets\":["))?;
        Ok(writer)
    }

    fn begin_set(&mut self, head: &SetHead) -> Result<(), ReportError> {
        let name = self.json(&head.name)?;
        let plugins = self.json(&head.plugins)?;
        let comma = if self.sets > 0 { "," } else { "" };
        self.write(&format!("{comma}\n{{\"name\":{name},\"plugins\":{plugins},\"runs\":["))?;
        self.runs_in_set = 0;
        self.sets += 1;
        Ok(())
    }

    fn run(&mut self, run: &SimRun) -> Result<(), ReportError> {
        let text = self.json(run)?;
        let comma = if self.runs_in_set > 0 { "," } else { "" };
        self.runs_in_set += 1;
        self.write(&format!("{comma}\n{text}"))
    }

    fn end_set(&mut self, summary: &Summary) -> Result<(), ReportError> {
        let summary = self.json(summary)?;
        self.write(&format!("\n],\"summary\":{summary}}}"))
    }

    fn finish(mut self, timeline: Option<&Timeline>, comparison: Option<&Result<Comparison, CompareError>>) -> Result<(), ReportError> {
        let timeline = self.json(&timeline)?;
        let comparison = match comparison {
            Some(Ok(comparison)) => format!(",\"comparison\":{}", self.json(comparison)?),
            Some(Err(why)) => format!(",\"comparison\":{{\"error\":{}}}", self.json(&why.to_string())?),
            None => String::new(),
        };
        self.write(&format!("\n],\"timeline\":{timeline}{comparison}}}\n"))?;
        self.out.flush().map_err(|source| ReportError::Io { path: self.path.clone(), source })
    }

    fn json<T: serde::Serialize + ?Sized>(&self, value: &T) -> Result<String, ReportError> {
        serde_json::to_string(value).map_err(|source| ReportError::Encode { path: self.path.clone(), source })
    }

    fn write(&mut self, text: &str) -> Result<(), ReportError> {
        self.out.write_all(text.as_bytes()).map_err(|source| ReportError::Io { path: self.path.clone(), source })
    }
}

/// Takes an experiment's runs, set after set and each set in seed order,
/// and keeps what its report shows.
pub struct ReportBuilder {
    setup: Setup,
    sets: Vec<SetOutcome>,
    pick: TimelinePick,
    json: Option<JsonWriter>,
}

impl ReportBuilder {
    /// A report of `setup`, charting `timeline_seed` (see [`Report`]), that
    /// streams every run to `json` if given.
    pub fn new(setup: Setup, timeline_seed: Option<u64>, json: Option<&Path>) -> Result<Self, ReportError> {
        let json = json.map(|path| JsonWriter::create(path, &setup)).transpose()?;
        Ok(ReportBuilder { setup, sets: Vec::new(), pick: TimelinePick { wanted: timeline_seed, ..TimelinePick::default() }, json })
    }

    /// Starts the next plugin set.
    pub fn begin_set(&mut self, head: SetHead) -> Result<(), ReportError> {
        if let Some(json) = &mut self.json {
            json.begin_set(&head)?;
        }
        self.sets.push(SetOutcome::new(head));
        Ok(())
    }

    /// Adds a run to the set begun last, and writes it to the JSON report.
    pub fn add(&mut self, run: &SimRun) -> Result<(), ReportError> {
        let Some(set) = self.sets.last_mut() else { return Ok(()) };
        set.add(run);
        self.pick.see(&set.head.name, run);
        match &mut self.json {
            Some(json) => json.run(run),
            None => Ok(()),
        }
    }

    /// The set being added to.
    pub fn current(&self) -> Option<&SetOutcome> {
        self.sets.last()
    }

    /// Ends the set begun last.
    pub fn end_set(&mut self) -> Result<(), ReportError> {
        if let (Some(json), Some(set)) = (&mut self.json, self.sets.last()) {
            json.end_set(&set.summary())?;
        }
        Ok(())
    }

    /// The report, once every set has ended.
    pub fn finish(self) -> Result<Report, ReportError> {
        let timeline = self.pick.picked();
        let comparison = comparison_of(&self.sets);
        if let Some(json) = self.json {
            json.finish(timeline.as_ref(), comparison.as_ref())?;
        }
        Ok(Report { setup: self.setup, sets: self.sets, timeline, comparison })
    }
}

/// What an experiment found: its setup, each set's figures and failing
/// runs, and the timeline of one seed (the one asked for, else the first
/// failing seed of any set, else the first seed of the first set).
pub struct Report {
    /// What was run.
    pub setup: Setup,
    /// Every plugin set.
    pub sets: Vec<SetOutcome>,
    /// The charted seed.
    pub timeline: Option<Timeline>,
    /// With two sets, whether the second differs from the first.
    pub comparison: Option<Result<Comparison, CompareError>>,
}

/// With two sets, the second compared against the first.
fn comparison_of(sets: &[SetOutcome]) -> Option<Result<Comparison, CompareError>> {
    match sets {
        [baseline, compared] => Some(compare::compare(&baseline.samples, &compared.samples)),
        _ => None,
    }
}

/// A report read back: its file, setup and sets.
#[derive(Clone, Debug)]
pub struct Part {
    /// The file.
    pub path: PathBuf,
    /// What it ran.
    pub setup: Setup,
    /// Its plugin sets.
    pub sets: Vec<SetHead>,
}

impl Part {
    /// Reads the setup and sets of the report at `path` (its runs are
    /// skipped, not kept).
    pub fn open(path: &Path) -> Result<Part, ReportError> {
        let (setup, sets) = read(path, None, &mut |_| {})?;
        Ok(Part { path: path.to_path_buf(), setup, sets })
    }

    /// Hands every run of set `index` to `sink`, in the file's order.
    pub fn runs(&self, index: usize, sink: &mut dyn FnMut(SimRun)) -> Result<(), ReportError> {
        read(&self.path, Some(index), sink).map(|_| ())
    }
}

/// Adds up the reports at `paths` (seed ranges apart, one setup, the same
/// sets) into a builder: the same figures, failing runs and timeline as one
/// experiment over all their seeds. `progress` is told each part as it is
/// read.
pub fn merge(
    paths: &[PathBuf],
    timeline_seed: Option<u64>,
    json: Option<&Path>,
    progress: &mut dyn FnMut(&Part, &SetHead),
) -> Result<Report, ReportError> {
    // Writing the merged report over one being read would lose it.
    if let Some(out) = json {
        refuse_overwrite(paths, out)?;
    }
    let mut parts = paths.iter().map(|path| Part::open(path)).collect::<Result<Vec<_>, _>>()?;
    parts.sort_by_key(|part| part.setup.seeds.first().map_or(0, |range| range[0]));
    let Some(first) = parts.first() else { return Err(ReportError::Empty) };
    let mismatch = |other: &Part, reason: String| ReportError::Mismatch { first: first.path.clone(), second: other.path.clone(), reason };
    for part in &parts[1..] {
        if let Some(reason) = first.setup.differs_from(&part.setup) {
            return Err(mismatch(part, reason));
        }
        if part.sets != first.sets {
            return Err(mismatch(part, format!("plugin sets {:?} against {:?}", first.sets, part.sets)));
        }
    }
    // Each part's seeds lie apart from the next part's, so that the runs
    // come in seed order part after part; touching ranges join.
    for pair in parts.windows(2) {
        let span = |part: &Part| {
            let first = part.setup.seeds.first().map_or(0, |r| r[0]);
            (first, part.setup.seeds.last().map_or(first, |r| r[1]))
        };
        let ((a0, a1), (b0, b1)) = (span(&pair[0]), span(&pair[1]));
        if b0 < a1 {
            return Err(ReportError::Mismatch {
                first: pair[0].path.clone(),
                second: pair[1].path.clone(),
                reason: format!("their seeds overlap or interleave ({a0}..{a1} and {b0}..{b1})"),
            });
        }
    }
    let mut seeds: Vec<[u64; 2]> = Vec::new();
    for range in parts.iter().flat_map(|part| &part.setup.seeds) {
        match seeds.last_mut() {
            Some(last) if last[1] == range[0] => last[1] = range[1],
            _ => seeds.push(*range),
        }
    }
    let setup = Setup { seeds, ..first.setup.clone() };
    let mut builder = ReportBuilder::new(setup, timeline_seed, json)?;
    for (index, head) in first.sets.iter().enumerate() {
        builder.begin_set(head.clone())?;
        for part in &parts {
            progress(part, head);
            let mut failed = None;
            let mut last = None;
            part.runs(index, &mut |run| {
                if failed.is_some() {
                    return;
                }
                let inside = part.setup.seeds.iter().any(|[a, b]| (*a..*b).contains(&run.seed));
                failed = if !inside || last.is_some_and(|last| run.seed <= last) {
                    Some(ReportError::Runs {
                        path: part.path.clone(),
                        reason: format!("seed {} is outside its seeds ({}) or out of order", run.seed, part.setup.seed_ranges()),
                    })
                } else {
                    builder.add(&run).err()
                };
                last = Some(run.seed);
            })?;
            if let Some(error) = failed {
                return Err(error);
            }
        }
        builder.end_set()?;
    }
    builder.finish()
}

/// Refused when `out` is one of the reports at `paths`.
pub fn refuse_overwrite(paths: &[PathBuf], out: &Path) -> Result<(), ReportError> {
    let Ok(out) = out.canonicalize() else { return Ok(()) };
    match paths.iter().find(|path| path.canonicalize().is_ok_and(|path| path == out)) {
        Some(path) => Err(ReportError::Overwrite(path.clone())),
        None => Ok(()),
    }
}

/// Reads the report at `path`, handing the runs of set `want` (if any) to
/// `sink` as they are parsed.
fn read(path: &Path, want: Option<usize>, sink: &mut dyn FnMut(SimRun)) -> Result<(Setup, Vec<SetHead>), ReportError> {
    let file = File::open(path).map_err(|source| ReportError::Io { path: path.to_path_buf(), source })?;
    let malformed = |source| ReportError::Malformed { path: path.to_path_buf(), source };
    let mut parser = serde_json::Deserializer::from_reader(BufReader::new(file));
    let found = Document { want, sink }.deserialize(&mut parser).map_err(malformed)?;
    parser.end().map_err(malformed)?;
    Ok(found)
}

/// The whole report; runs of set `want` go to `sink`, the rest are skipped.
struct Document<'s> {
    want: Option<usize>,
    sink: &'s mut dyn FnMut(SimRun),
}

impl<'de> DeserializeSeed<'de> for Document<'_> {
    type Value = (Setup, Vec<SetHead>);

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Document<'_> {
    type Value = (Setup, Vec<SetHead>);

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an experiment report")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = serde_json::Map::new();
        let mut sets = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "sets" => sets = Some(map.next_value_seed(Sets { want: self.want, sink: &mut *self.sink })?),
                // Worked out again from the runs when merged.
                "timeline" | "comparison" => {
                    map.next_value::<IgnoredAny>()?;
                }
                _ => {
                    fields.insert(key, map.next_value()?);
                }
            }
        }
        let setup = serde_json::from_value(serde_json::Value::Object(fields)).map_err(de::Error::custom)?;
        Ok((setup, sets.ok_or_else(|| de::Error::missing_field("sets"))?))
    }
}

struct Sets<'s> {
    want: Option<usize>,
    sink: &'s mut dyn FnMut(SimRun),
}

impl<'de> DeserializeSeed<'de> for Sets<'_> {
    type Value = Vec<SetHead>;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Sets<'_> {
    type Value = Vec<SetHead>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of plugin sets")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut heads = Vec::new();
        while let Some(head) = seq.next_element_seed(Set { deliver: self.want == Some(heads.len()), sink: &mut *self.sink })? {
            heads.push(head);
        }
        Ok(heads)
    }
}

struct Set<'s> {
    deliver: bool,
    sink: &'s mut dyn FnMut(SimRun),
}

impl<'de> DeserializeSeed<'de> for Set<'_> {
    type Value = SetHead;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Set<'_> {
    type Value = SetHead;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a plugin set: name, plugins, runs and summary")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (mut name, mut plugins) = (None, None);
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "name" => name = Some(map.next_value()?),
                "plugins" => plugins = Some(map.next_value()?),
                "runs" if self.deliver => map.next_value_seed(Runs { sink: &mut *self.sink })?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(SetHead {
            name: name.ok_or_else(|| de::Error::missing_field("name"))?,
            plugins: plugins.ok_or_else(|| de::Error::missing_field("plugins"))?,
        })
    }
}

struct Runs<'s> {
    sink: &'s mut dyn FnMut(SimRun),
}

impl<'de> DeserializeSeed<'de> for Runs<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Runs<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of runs")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(run) = seq.next_element::<SimRun>()? {
            (self.sink)(run);
        }
        Ok(())
    }
}
