//! `onboard`: onboard health and care providers onto an Integrated Care System's
//! population-health data platform by configuration, not code.
//!
//! The modules below are the pipeline, in order:
//!
//! ```text
//! manifest ─► validate ─► compile ─► ingest ─► feeds ─► run ─► report ─► link ─► evaluate
//!  (YAML)     (resolved)   (plans)   (scan,     (files)  (run id,  (DQ)   (persons,  (vs truth)
//!                                     split)             publish)          spine)
//!   ─► risk ─► ops ─► population ─► serve          demo: all of it over a synthetic ICS
//!   (scores,  (monthly) (segments,   (dashboard)    deploy: the same plans elsewhere
//!    SHAP)              cost)
//! ```
//!
//! * [`diagnostics`]: the one problem model (`file:line:col`, stable code, hint) and its renderers.
//! * [`store`]: the one Parquet writer and atomic replacement of outputs.
//! * [`disclosure`]: the one disclosure control of aggregate outputs (small-number
//!   suppression, rounding, secondary suppression), used by every aggregate writer.
//! * [`manifest`]: read provider manifests with positions; templates; JSON Schema.
//! * [`canonical`]: the canonical data model (schemas/canonical/*.yaml) as Arrow schemas.
//! * [`validate`]: raw → resolved manifests, every problem at once.
//! * [`udf`]: NHS-specific scalar functions for DataFusion.
//! * [`pseudonymise`]: the per-ICS key and keyed `person_key`.
//! * [`engine`]: DataFusion session factory (memory pool, spilling, UDFs).
//! * [`ics`]: the ICS deployment file.
//! * [`compile`]: resolved manifests → DataFusion plans (no I/O).
//! * [`ingest`]: one source's extracts through its plan: the scan (Arrow batches with
//!   lineage, unreadable rows recorded), the split into silver, identity and quarantine,
//!   statistics and samples.
//! * [`feeds`]: deliveries over time: load strategies, the ledger, extract dates,
//!   completeness checks, carrying the last good data forward.
//! * [`run`]: a run of an ICS: run id, every source ingested and settled, reconciled,
//!   `run.json`, published atomically.
//! * [`report`]: the data-quality report (JSON, HTML).
//! * [`link`]: record linkage declared per ICS: deterministic tiers, Fellegi–Sunter
//!   trained by EM, guarded clustering, the spine with survivorship.
//! * [`evaluate`]: linkage scored against labelled data (pairwise and cluster measures).
//! * [`risk`]: risk scoring over the spine: declared features, open morbidity indices,
//!   trained or imported models, exact SHAP explanations, model cards.
//! * [`ops`]: model operations month by month: monitoring against actual admissions,
//!   feature drift, case referrals, audited re-identification, the monthly refresh.
//! * [`population`]: population health analytics over the spine and the risk features:
//!   segmentation, morbidity profiles, cost of care, inequalities, urgent care, the report.
//! * [`serve`]: the clinical intelligence dashboard over `gold/` (pages, JSON API, roles,
//!   sign-in, audit log; `onboard serve`).
//! * [`demo`]: `onboard demo`, the whole pipeline over a synthetic ICS.
//! * [`deploy`]: the same plans elsewhere: `onboard render` bundles (Databricks, Ballista,
//!   Kubernetes), Spark SQL, object-storage URIs, the Ballista engine (feature `distributed`).
//! * [`refdata`]: reference data (IMD 2019 by LSOA, postcode → LSOA lookups).
//! * [`synth`]: a synthetic ICS with ground truth (for the demo, tests and benchmarks).
//! * [`reference`]: reference documentation generated from the registries.
//! * [`cli`]: the `onboard` command line.

pub mod diagnostics;
pub mod disclosure;
pub mod store;
pub mod manifest;
pub mod canonical;
pub mod validate;
pub mod udf;
pub mod pseudonymise;
pub mod engine;
pub mod ics;
pub mod compile;
pub mod ingest;
pub mod feeds;
pub mod run;
pub mod report;
pub mod link;
pub mod evaluate;
pub mod risk;
pub mod ops;
pub mod population;
pub mod deploy;
pub mod serve;
pub mod demo;
pub mod refdata;
pub mod synth;
pub mod reference;
pub mod cli;
