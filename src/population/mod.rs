//! Population health analytics: the stage after `risk`. It owns the segmentations and
//! flags declared in the `population:` section of the ICS file (Bridges to Health and
//! Core20PLUS5 shipped as editable rules over the person features), the open morbidity
//! profile, cost of care per person per setting per year (provider costs, else a
//! versioned tariff), urgent and emergency care (chronic ACSC admissions, low-acuity A&E,
//! arrival and departure), and the inequality tables: every measure by IMD quintile,
//! ethnic group, age band, sex, practice, PCN, locality and segment, as counts, crude
//! rates and directly age-standardised rates with 95 % intervals, every count through
//! [`crate::disclosure`]. It reads `gold/features`, `gold/risk_scores` and
//! `linkage/spine/`, and writes `gold/population/` (published aggregates and row-level
//! tables), `population/` (the run's exact reconciliation and summary, internal) and
//! `reports/population.html`.
//!
//! * [`config`]: the `population:` section.
//! * [`catalogue`]: the settings, measures and breakdowns published, without data.
//! * [`files`]: the tariff and the ACSC list.
//! * [`check`]: every problem of the settings, without data (run when the ICS loads).
//! * [`inputs`]: the tables the stage reads.
//! * [`frame`]: one row per person with every breakdown and count.
//! * [`segments`]: rules checked against the features, evaluated, assigned.
//! * [`cost`]: costed events, the tariff, person × setting × year, reconciliation.
//! * [`uec`]: urgent and emergency care per person.
//! * [`stats`]: Wilson, Byar, DSR with Dobson intervals, the ESP 2013.
//! * [`aggregate`]: tidy rows with disclosure control.
//! * [`report`]: the static HTML report and the text summary.

pub mod config;
pub mod catalogue;
pub mod files;
pub mod check;
pub mod inputs;
pub mod frame;
pub mod segments;
pub mod cost;
pub mod uec;
pub mod stats;
pub mod aggregate;
pub mod report;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Float64Array, RecordBatch, StringArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema};

use config::{PopulationSettingError, PopulationSettings, SegmentationsFile};

/// A population-stage failure, naming the file, setting or data at fault.
#[derive(Debug, thiserror::Error)]
pub enum PopulationError {
    #[error(transparent)]
    Setting(#[from] PopulationSettingError),
    #[error(transparent)]
    Risk(#[from] crate::risk::RiskError),
    #[error("{what}: {message}")]
    Query { what: String, message: String },
    #[error("{0}")]
    Missing(String),
    #[error("{0}")]
    Segmentation(String),
    #[error("{0}")]
    Tariff(String),
    #[error("{0}")]
    Reconcile(String),
    #[error(transparent)]
    Disclosure(#[from] crate::disclosure::DisclosureError),
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
}

/// Everything the population commands share.
pub struct Stage {
    pub risk: crate::risk::Stage,
    pub settings: PopulationSettings,
    pub rules: SegmentationsFile,
    pub tariff: files::Tariff,
    pub acsc: HashSet<String>,
    pub acsc_source: String,
    pub esp: stats::StandardPopulation,
    pub as_of: NaiveDate,
    /// (feature name, label) of the condition features: the morbidity profile.
    pub conditions: Vec<(String, String)>,
    pub measures: Vec<String>,
    pub breakdowns: Vec<String>,
}

impl Stage {
    /// Settings from the ICS file's `population:` section (defaults without one); refuses
    /// settings with any problem, the first named.
    pub fn load(out: &Path, ics: Option<&crate::ics::Ics>) -> Result<Stage, PopulationError> {
        let risk = crate::risk::Stage::load(out, ics)?;
        let settings = ics
            .and_then(|i| i.file.population.clone())
            .unwrap_or_default();
        if let Some(e) = check::check(
            &settings,
            &risk.dir,
            &risk.settings,
            &risk.specs,
            &risk.codelists,
        )
        .into_iter()
        .next()
        {
            return Err(e.into());
        }
        let rules = settings.segmentations_and_flags(&risk.dir)?;
        let (tname, ttext) = settings.tariff_text(&risk.dir)?;
        let tariff = files::Tariff::parse(&tname, &ttext).map_err(PopulationError::Tariff)?;
        let (aname, atext) = settings.acsc_text(&risk.dir)?;
        let acsc = files::parse_acsc(&aname, &atext).map_err(PopulationError::Missing)?;
        let esp =
            stats::StandardPopulation::parse("reference/population/esp2013.csv", config::ESP2013)
                .map_err(PopulationError::Missing)?;
        let as_of = settings
            .as_of
            .as_deref()
            .and_then(crate::risk::parse_date)
            .unwrap_or(risk.as_of.score);
        let conditions = catalogue::condition_features(&risk.specs);
        let (mut seg, mut flags, mut bands) = Default::default();
        let names = catalogue::names_of(&rules, &mut seg, &mut flags, &risk.settings, &mut bands);
        let measures = settings.measures.clone().unwrap_or_else(|| {
            catalogue::measure_names(
                &conditions.iter().map(|c| c.0.clone()).collect::<Vec<_>>(),
                &names,
            )
        });
        let mut breakdowns = settings
            .breakdowns
            .clone()
            .unwrap_or_else(|| catalogue::breakdown_names(&names));
        if !breakdowns.iter().any(|b| b == "all") {
            breakdowns.insert(0, "all".into());
        }
        Ok(Stage {
            risk,
            settings,
            rules,
            tariff,
            acsc,
            acsc_source: aname,
            esp,
            as_of,
            conditions,
            measures,
            breakdowns,
        })
    }

    pub fn gold(&self) -> PathBuf {
        self.risk.out.join("gold").join("population")
    }
}

/// What `onboard population run` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    #[serde(with = "crate::risk::config::ymd")]
    pub as_of: NaiveDate,
    pub persons: usize,
    pub cost_year: String,
    pub segment_sizes: Vec<(String, Vec<(String, usize)>)>,
    pub reconciliation: Vec<cost::Reconciled>,
    pub aggregate_rows: usize,
    pub suppressed_counts: usize,
    pub published_counts: usize,
    pub tariff_version: String,
    pub outputs: Vec<PathBuf>,
}

/// The last complete financial year on or before the as-of date.
pub fn cost_year(as_of: NaiveDate) -> i32 {
    let fy = cost::financial_year(as_of);
    let end = NaiveDate::from_ymd_opt(fy + 1, 3, 31).unwrap_or(as_of);
    if end <= as_of { fy } else { fy - 1 }
}

/// Segments, costs, urgent care, the aggregates, the person table and the report.
pub async fn run(stage: &Stage) -> Result<Summary, PopulationError> {
    let ctx = crate::engine::planning_context();
    inputs::register_spine(&ctx, &stage.risk.out).await?;
    inputs::register_features(&ctx, &stage.risk.out, stage.as_of).await?;
    let mut frame = frame::load(&ctx, &stage.conditions).await?;
    let assigned = segments::assign(&ctx, &stage.rules).await?;
    for (p, person) in frame.persons.iter_mut().enumerate() {
        person.segments = assigned.segments.iter().map(|s| s[p]).collect();
        person.traces = assigned.traces.iter().map(|t| t[p].clone()).collect();
        person.flags = assigned.flags.iter().map(|f| f[p]).collect();
    }
    cost::register(
        &ctx,
        &stage.tariff,
        stage.as_of,
        &stage.risk.settings.emergency_admission_methods,
    )
    .await?;
    let (person_years, reconciliation) = cost::person_years(&ctx).await?;
    let fy = cost_year(stage.as_of);
    frame.settings = catalogue::settings();
    for p in frame.persons.iter_mut() {
        p.cost = vec![0.0; frame.settings.len()];
    }
    for (k, s, c) in cost::per_person(&ctx, fy).await? {
        if let (Some(&p), Some(si)) = (
            frame.index.get(&k),
            frame.settings.iter().position(|x| *x == s),
        ) {
            frame.persons[p].cost[si] += c;
        }
    }
    let u = uec::UecInputs {
        emergency_methods: &stage.risk.settings.emergency_admission_methods,
        acsc_prefixes: &stage.acsc,
        low_acuity: &stage.settings.low_acuity_codes,
        admitted: &stage.settings.admitted_discharge_codes,
        ambulance_arrival_codes: &stage.settings.ambulance_arrival_codes,
    };
    let attendances = uec::count(&ctx, &mut frame, stage.as_of, &u).await?;
    let rows = aggregates(stage, &frame, &attendances)?;
    write_outputs(stage, &frame, &rows, person_years, &reconciliation, fy)
}

/// `onboard population segments`: assign and print the segment sizes.
pub async fn segment_sizes(stage: &Stage) -> Result<String, PopulationError> {
    let ctx = crate::engine::planning_context();
    inputs::register_spine(&ctx, &stage.risk.out).await?;
    inputs::register_features(&ctx, &stage.risk.out, stage.as_of).await?;
    frame::load(&ctx, &stage.conditions).await?;
    let a = segments::assign(&ctx, &stage.rules).await?;
    let mut s = format!(
        "segments at {} ({} persons)\n",
        stage.as_of,
        a.person_keys.len()
    );
    for (i, seg) in stage.rules.segmentations.iter().enumerate() {
        s.push_str(&format!("{}:\n", seg.name));
        for (j, g) in seg.segments.iter().enumerate() {
            let n = a.segments[i].iter().filter(|x| **x == j).count();
            s.push_str(&format!("  {:<22} {n:>7}\n", g.name));
        }
    }
    Ok(s)
}

fn aggregates(
    stage: &Stage,
    frame: &frame::Frame,
    attendances: &[uec::Attendance],
) -> Result<Vec<aggregate::Row>, PopulationError> {
    let (mut seg, mut flags, mut bands) = Default::default();
    let names = catalogue::names_of(
        &stage.rules,
        &mut seg,
        &mut flags,
        &stage.risk.settings,
        &mut bands,
    );
    let measures = aggregate::measures(frame, &names);
    let c = aggregate::Context {
        frame,
        attendances,
        esp: &stage.esp,
        policy: &stage.settings.disclosure,
    };
    let mut rows = Vec::new();
    for bname in &stage.breakdowns {
        let b = aggregate::breakdown(frame, bname, names.segmentations);
        rows.extend(aggregate::population(&c, &b)?);
        for m in measures
            .iter()
            .filter(|m| stage.measures.contains(&m.name) && m.name != *bname)
        {
            rows.extend(aggregate::publish(&c, m, &b)?);
        }
    }
    Ok(rows)
}

fn strings<'a>(v: impl Iterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(StringArray::from_iter(v))
}
fn floats(v: impl Iterator<Item = Option<f64>>) -> ArrayRef {
    Arc::new(Float64Array::from_iter(v))
}

/// The tidy aggregate table as one record batch.
pub fn rows_batch(
    rows: &[aggregate::Row],
    as_of: NaiveDate,
) -> Result<RecordBatch, PopulationError> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("as_of_date", DataType::Date32, false),
        Field::new("measure", DataType::Utf8, false),
        Field::new("breakdown", DataType::Utf8, false),
        Field::new("group", DataType::Utf8, false),
        Field::new("category", DataType::Utf8, true),
        Field::new("statistic", DataType::Utf8, false),
        Field::new("unit", DataType::Utf8, false),
        Field::new("value", DataType::Float64, true),
        Field::new("lower_95", DataType::Float64, true),
        Field::new("upper_95", DataType::Float64, true),
        Field::new("status", DataType::Utf8, false),
    ]));
    let day = inputs::epoch_day(as_of) as i32;
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Date32Array::from_iter_values(rows.iter().map(|_| day))),
        strings(rows.iter().map(|r| Some(r.measure.as_str()))),
        strings(rows.iter().map(|r| Some(r.breakdown.as_str()))),
        strings(rows.iter().map(|r| Some(r.group.as_str()))),
        strings(rows.iter().map(|r| r.category.as_deref())),
        strings(rows.iter().map(|r| Some(r.statistic))),
        strings(rows.iter().map(|r| Some(r.unit))),
        floats(rows.iter().map(|r| r.value)),
        floats(rows.iter().map(|r| r.lower_95)),
        floats(rows.iter().map(|r| r.upper_95)),
        strings(rows.iter().map(|r| Some(r.status))),
    ];
    RecordBatch::try_new(schema, cols).map_err(|e| PopulationError::Missing(e.to_string()))
}

fn persons_batch(stage: &Stage, frame: &frame::Frame) -> Result<RecordBatch, PopulationError> {
    let p = &frame.persons;
    let mut fields = vec![
        Field::new("person_key", DataType::Utf8, false),
        Field::new("as_of_date", DataType::Date32, false),
        Field::new("age", DataType::Float64, false),
        Field::new("age_band", DataType::Utf8, false),
        Field::new("sex", DataType::Utf8, false),
        Field::new("imd_quintile", DataType::Utf8, false),
        Field::new("ethnic_group", DataType::Utf8, false),
        Field::new("practice", DataType::Utf8, false),
        Field::new("pcn", DataType::Utf8, false),
        Field::new("locality", DataType::Utf8, false),
        Field::new("risk_band", DataType::Utf8, false),
        Field::new("morbidity_profile", DataType::Utf8, false),
        Field::new("condition_count", DataType::Float64, false),
    ];
    let day = inputs::epoch_day(stage.as_of) as i32;
    let mut cols: Vec<ArrayRef> = vec![
        strings(p.iter().map(|x| Some(x.key.as_str()))),
        Arc::new(Date32Array::from_iter_values(p.iter().map(|_| day))),
        floats(p.iter().map(|x| Some(x.age as f64))),
        strings(p.iter().map(|x| Some(frame::age_band(x.age)))),
        strings(p.iter().map(|x| Some(x.sex.as_str()))),
        Arc::new(StringArray::from_iter_values(
            p.iter().map(|x| x.imd_quintile()),
        )),
        strings(p.iter().map(|x| Some(x.ethnic_group.as_str()))),
        strings(p.iter().map(|x| Some(x.practice.as_str()))),
        strings(p.iter().map(|x| Some(x.pcn.as_str()))),
        strings(p.iter().map(|x| Some(x.locality.as_str()))),
        strings(p.iter().map(|x| Some(x.risk_band.as_str()))),
        Arc::new(StringArray::from_iter_values(
            p.iter().map(|x| x.profile(&frame.conditions)),
        )),
        floats(p.iter().map(|x| Some(x.ltc_count as f64))),
    ];
    for (s, seg) in stage.rules.segmentations.iter().enumerate() {
        fields.push(Field::new(
            format!("segment_{}", seg.name),
            DataType::Utf8,
            false,
        ));
        fields.push(Field::new(
            format!("segment_rules_{}", seg.name),
            DataType::Utf8,
            false,
        ));
        cols.push(strings(
            p.iter()
                .map(|x| Some(seg.segments[x.segments[s]].name.as_str())),
        ));
        cols.push(strings(p.iter().map(|x| Some(x.traces[s].as_str()))));
    }
    for (k, f) in stage.rules.flags.iter().enumerate() {
        fields.push(Field::new(
            format!("flag_{}", f.name),
            DataType::Boolean,
            false,
        ));
        cols.push(Arc::new(BooleanArray::from_iter(
            p.iter().map(|x| Some(x.flags[k])),
        )));
    }
    for (i, m) in catalogue::EVENT_MEASURES.iter().enumerate() {
        fields.push(Field::new(*m, DataType::Float64, false));
        cols.push(floats(p.iter().map(|x| Some(x.events[i] as f64))));
    }
    fields.push(Field::new("cost_year_total", DataType::Float64, false));
    cols.push(floats(p.iter().map(|x| Some(x.cost.iter().sum()))));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)
        .map_err(|e| PopulationError::Missing(e.to_string()))
}

fn write_outputs(
    stage: &Stage,
    frame: &frame::Frame,
    rows: &[aggregate::Row],
    person_years: Vec<RecordBatch>,
    reconciliation: &[cost::Reconciled],
    fy: i32,
) -> Result<Summary, PopulationError> {
    let gold = stage.gold();
    let date = stage.as_of.format("%Y-%m-%d");
    let agg = gold.join("aggregates").join(format!("as_of={date}"));
    let persons = gold.join("persons").join(format!("as_of={date}"));
    let costs = gold.join("cost_person_year");
    crate::risk::dataset::write_dir(&agg, &[rows_batch(rows, stage.as_of)?])?;
    crate::risk::dataset::write_dir(&persons, &[persons_batch(stage, frame)?])?;
    let py: Vec<RecordBatch> = person_years
        .into_iter()
        .filter(|b| b.num_rows() > 0)
        .collect();
    if !py.is_empty() {
        crate::risk::dataset::write_dir(&costs, &py)?;
    }
    let internal = stage.risk.out.join("population");
    let rec = internal.join("cost_reconciliation.json");
    let file_err = |p: &Path, e: std::io::Error| PopulationError::File {
        path: p.to_path_buf(),
        message: e.to_string(),
    };
    std::fs::create_dir_all(&internal).map_err(|e| file_err(&internal, e))?;
    let json = serde_json::to_string_pretty(reconciliation).unwrap_or_default();
    crate::store::write_atomic(&rec, json.as_bytes()).map_err(|e| file_err(&rec, e))?;
    let counts: Vec<&aggregate::Row> = rows.iter().filter(|r| r.statistic == "count").collect();
    let summary = Summary {
        as_of: stage.as_of,
        persons: frame.persons.len(),
        cost_year: cost::fy_label(fy),
        segment_sizes: stage
            .rules
            .segmentations
            .iter()
            .enumerate()
            .map(|(s, seg)| {
                let sizes = seg
                    .segments
                    .iter()
                    .enumerate()
                    .map(|(j, g)| {
                        (
                            g.name.clone(),
                            frame.persons.iter().filter(|p| p.segments[s] == j).count(),
                        )
                    })
                    .collect();
                (seg.name.clone(), sizes)
            })
            .collect(),
        reconciliation: reconciliation.to_vec(),
        aggregate_rows: rows.len(),
        suppressed_counts: counts.iter().filter(|r| r.status != "published").count(),
        published_counts: counts.iter().filter(|r| r.status == "published").count(),
        tariff_version: stage.tariff.version.clone(),
        outputs: vec![agg, persons, costs, rec],
    };
    let html_path = stage.risk.out.join("reports").join("population.html");
    let html = report::html(stage, &summary, rows);
    std::fs::create_dir_all(stage.risk.out.join("reports")).map_err(|e| file_err(&html_path, e))?;
    crate::store::write_atomic(&html_path, html.as_bytes()).map_err(|e| file_err(&html_path, e))?;
    let summary_path = internal.join("summary.json");
    crate::store::write_atomic(
        &summary_path,
        serde_json::to_string_pretty(&summary)
            .unwrap_or_default()
            .as_bytes(),
    )
    .map_err(|e| file_err(&summary_path, e))?;
    let mut s = summary;
    s.outputs.push(html_path);
    s.outputs.push(summary_path);
    Ok(s)
}
