#![recursion_limit = "256"]
//! The one integration-test binary: modules per area, run the real `onboard` binary on
//! fixtures where it matters.

mod architecture;
mod drift;
mod feeds;
mod ics_file;
mod formats;
mod fuzz;
mod linkage;
mod ops;
mod risk;
mod population;
mod robustness;
mod udfs;
mod run_ics;
mod scan_parallel;
mod serve;
mod source_columns;
mod crash;
mod deploy;
#[cfg(feature = "distributed")]
mod distributed;
mod synth_demo;
mod risk_models;
mod util;
mod validate_cli;
