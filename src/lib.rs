//! `onboard`: onboard health and care providers onto an Integrated Care System's
//! population-health data platform by configuration, not code.
//!
//! The modules below are the pipeline, in order:
//!
//! ```text
//! manifests ─► manifest ─► validate ─► (compile ─► execute ─► link ─► risk)  ─► outputs
//!   (YAML)    (read+locate) (resolved)     DataFusion plans over real extracts
//! ```
//!
//! * [`diagnostics`]: the one problem model (`file:line:col`, stable code, hint) and its renderers.
//! * [`manifest`]: read provider manifests with positions; templates; JSON Schema.
//! * [`canonical`]: the canonical data model (schemas/canonical/*.yaml) as Arrow schemas.
//! * [`validate`]: raw → resolved manifests, every problem at once.
//! * [`udf`]: NHS-specific scalar functions for DataFusion.
//! * [`engine`]: DataFusion session factory.
//! * [`reference`]: reference documentation generated from the registries.
//! * [`cli`]: the `onboard` command line.

pub mod canonical;
pub mod cli;
pub mod diagnostics;
pub mod engine;
pub mod manifest;
pub mod reference;
pub mod udf;
pub mod validate;
