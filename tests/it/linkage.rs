//! `onboard link` on small hand-built ICSs of identity sources only: clustering over
//! every link (a person with many records and no NHS number ends as one person), the
//! guards on whole components (two NHS numbers, incompatible dates of birth), link-only
//! runs of two registers, and declared identity attributes.

use std::collections::HashMap;
use std::path::Path;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;

use crate::util::{code, onboard, stdout};

/// A tiny reproducible generator (splitmix64).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn pick<'a>(&mut self, v: &[&'a str]) -> &'a str {
        v[(self.next() % v.len() as u64) as usize]
    }
}

const GIVEN: &[&str] = &[
    "OLIVER", "GEORGE", "HARRY", "JACK", "JACOB", "NOAH", "CHARLIE", "MUHAMMAD", "THOMAS", "OSCAR",
    "WILLIAM", "JAMES", "OLIVIA", "AMELIA", "ISLA", "AVA", "EMILY", "SOPHIA", "GRACE", "MIA",
    "POPPY", "ELLA", "LILY", "EVIE", "ISABELLA", "SOPHIE", "IVY", "FREYA", "HARPER", "DAISY",
    "ALFIE", "LEO", "FREDDIE", "ARCHIE", "HENRY", "JOSHUA", "LUCAS", "ETHAN", "ADAM", "SAMUEL",
    "RUBY", "CHLOE", "MAISIE", "ERIN", "HOLLY", "JESSICA", "PHOEBE", "MATILDA",
];
const FAMILY: &[&str] = &[
    "SMITH",
    "JONES",
    "TAYLOR",
    "BROWN",
    "WILLIAMS",
    "WILSON",
    "JOHNSON",
    "DAVIES",
    "ROBINSON",
    "WRIGHT",
    "THOMPSON",
    "EVANS",
    "WALKER",
    "WHITE",
    "ROBERTS",
    "GREEN",
    "HALL",
    "WOOD",
    "JACKSON",
    "CLARKE",
    "PATEL",
    "KHAN",
    "LEWIS",
    "JAMES",
    "PHILLIPS",
    "MASON",
    "MITCHELL",
    "ROSE",
    "DAVIS",
    "RODRIGUEZ",
    "COX",
    "ALEXANDER",
    "MORRIS",
    "WARD",
    "TURNER",
    "COOPER",
    "HILL",
    "MOORE",
    "KING",
    "HARRIS",
    "BAKER",
    "ALLEN",
    "YOUNG",
    "SCOTT",
    "ADAMS",
    "CAMPBELL",
    "ANDERSON",
    "BELL",
    "STEWART",
    "MURRAY",
    "ASHWORTH",
    "BARRACLOUGH",
    "CRAVEN",
    "DOBSON",
];
const STREETS: &[&str] = &[
    "HIGH STREET",
    "STATION ROAD",
    "CHURCH LANE",
    "MILL LANE",
    "PARK AVENUE",
    "VICTORIA ROAD",
    "GREEN LANE",
    "MANOR ROAD",
    "KINGS ROAD",
    "QUEENS ROAD",
    "NEW ROAD",
    "SCHOOL LANE",
];

/// One identity record: id, given, family, dob (YYYY-MM-DD), sex, postcode, address,
/// NHS number.
#[derive(Clone)]
struct Rec {
    id: String,
    given: String,
    family: String,
    dob: String,
    sex: &'static str,
    postcode: String,
    address: String,
    nhs: String,
}

fn random_person(rng: &mut Rng, id: String) -> Rec {
    let pc = format!(
        "LS{} {}{}{}",
        1 + rng.next() % 28,
        rng.next() % 10,
        (b'A' + (rng.next() % 26) as u8) as char,
        (b'A' + (rng.next() % 26) as u8) as char
    );
    Rec {
        id,
        given: rng.pick(GIVEN).into(),
        family: rng.pick(FAMILY).into(),
        dob: format!(
            "{}-{:02}-{:02}",
            1930 + rng.next() % 80,
            1 + rng.next() % 12,
            1 + rng.next() % 28
        ),
        sex: if rng.next() % 2 == 0 { "1" } else { "2" },
        postcode: pc,
        address: format!("{} {}", 1 + rng.next() % 120, rng.pick(STREETS)),
        nhs: String::new(),
    }
}

/// A provider whose one source maps straight to `person_identity`.
fn manifest(provider: &str, dir: &str) -> String {
    format!(
        r#"manifest_version: 1
provider: {{ id: {provider}, name: Register {provider}, setting: other, system: register }}
sources:
  people:
    path: "{dir}/people.csv"
    format: csv
    columns: [id, given, family, dob, sex, postcode, address, nhs]
    maps_to: person_identity
    fields:
      nhs_number: {{ from: nhs, transform: nhs_number }}
      given_name: {{ from: given, transform: name }}
      family_name: {{ from: family, transform: name }}
      date_of_birth: {{ from: dob, parse_date: ["%Y-%m-%d"] }}
      sex: {{ from: sex }}
      postcode: {{ from: postcode, transform: uk_postcode }}
      address_line_1: {{ from: address }}
      source_record_id: {{ from: id }}
"#
    )
}

/// Write an ICS of identity-only registers (provider → records) and its `linkage:`
/// section, run it and link it; returns the output directory.
fn run_and_link(dir: &Path, registers: &[(&str, Vec<Rec>)], linkage: &str) -> std::path::PathBuf {
    std::fs::create_dir_all(dir.join("providers")).unwrap();
    for (p, recs) in registers {
        std::fs::write(
            dir.join("providers").join(format!("{p}.yaml")),
            manifest(p, p),
        )
        .unwrap();
        let land = dir.join("landing").join(p);
        std::fs::create_dir_all(&land).unwrap();
        let mut csv = String::from("id,given,family,dob,sex,postcode,address,nhs\n");
        for r in recs {
            csv += &format!(
                "{},{},{},{},{},{},{},{}\n",
                r.id, r.given, r.family, r.dob, r.sex, r.postcode, r.address, r.nhs
            );
        }
        std::fs::write(land.join("people.csv"), csv).unwrap();
    }
    let ics = dir.join("ics.yaml");
    std::fs::write(
        &ics,
        format!(
            "ics: {{ id: test, name: Test ICS }}\nproviders: [providers]\nlanding: landing\noutput: out\n\
             reference_date: 2026-10-31\nengine: {{ memory_limit: 512MiB, target_partitions: 2 }}\nlinkage:\n{linkage}"
        ),
    )
    .unwrap();
    let o = onboard(&["run", "--ics", ics.to_str().unwrap(), "--demo-key"]);
    assert_eq!(
        code(&o),
        0,
        "{}\n{}",
        stdout(&o),
        String::from_utf8_lossy(&o.stderr)
    );
    let out = dir.join("out");
    let o = onboard(&[
        "link",
        "--out",
        out.to_str().unwrap(),
        "--ics",
        ics.to_str().unwrap(),
        "--demo-key",
    ]);
    assert_eq!(
        code(&o),
        0,
        "{}\n{}",
        stdout(&o),
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

fn parquet_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            parquet_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "parquet") {
            out.push(p);
        }
    }
}

/// Text columns of every Parquet file under `path` (or of the file), by name.
fn columns(path: &Path, names: &[&str]) -> Vec<Vec<String>> {
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let mut files = vec![];
    if path.is_file() {
        files.push(path.to_path_buf());
    } else {
        parquet_files(path, &mut files);
    }
    let mut rows = vec![];
    for f in files {
        let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&f).unwrap())
            .unwrap()
            .build()
            .unwrap();
        for b in reader {
            let b = b.unwrap();
            let cols: Vec<_> = names
                .iter()
                .map(|n| cast(b.column_by_name(n).unwrap(), &DataType::Utf8).unwrap())
                .collect();
            for i in 0..b.num_rows() {
                rows.push(
                    cols.iter()
                        .map(|c| {
                            let s = c.as_string::<i32>();
                            if s.is_null(i) {
                                String::new()
                            } else {
                                s.value(i).to_string()
                            }
                        })
                        .collect(),
                );
            }
        }
    }
    rows
}

/// provider/source_record_id → linked person key.
fn person_of_record(out: &Path) -> HashMap<String, String> {
    let map: HashMap<String, String> = columns(
        &out.join("linkage/link_map.parquet"),
        &["candidate_key", "person_key"],
    )
    .into_iter()
    .map(|r| (r[0].clone(), r[1].clone()))
    .collect();
    columns(
        &out.join("identity/person_identity"),
        &["provider_id", "source_record_id", "person_key"],
    )
    .into_iter()
    .map(|r| (format!("{}/{}", r[0], r[1]), map[&r[2]].clone()))
    .collect()
}

fn summary(out: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(out.join("linkage/summary.json")).unwrap()).unwrap()
}

/// A background population (two records of most people, some with a typo) so the
/// model has something to learn from.
fn background(rng: &mut Rng, people: usize) -> Vec<Rec> {
    let mut v = vec![];
    for p in 0..people {
        let a = random_person(rng, format!("bg{p}a"));
        let mut b = a.clone();
        b.id = format!("bg{p}b");
        if p % 3 == 0 {
            b.given.push('E');
        }
        if p % 4 == 0 {
            b.address = format!("{} {}", 1 + rng.next() % 120, rng.pick(STREETS));
        }
        v.push(a);
        if p % 5 != 0 {
            v.push(b);
        }
    }
    v
}

/// The 12 records of one person without an NHS number: records 2k and 2k+1 share an
/// address (so each pair is the other's best match), records 2k+1 and 2k+2 share a
/// spelling of the given name; the family name and date of birth are constant.
fn chain_person(dobs: impl Fn(usize) -> String) -> Vec<Rec> {
    let spellings = [
        "KATHERINE",
        "KATHERYNE",
        "CATHERINE",
        "KATHRINE",
        "KATHARINE",
        "CATHRINE",
        "KATHERIN",
    ];
    (0..12)
        .map(|k| Rec {
            id: format!("chain{k}"),
            given: spellings[(k + 1) / 2].into(),
            family: "FOTHERINGHAM".into(),
            dob: dobs(k),
            sex: "2",
            postcode: format!("LS{} 4QX", 30 + k / 2),
            address: format!("{} MOORLAND VIEW", 10 + k / 2),
            nhs: String::new(),
        })
        .collect()
}

const LINKAGE: &str =
    "  blocking: [[date_of_birth_any_order], [family_name_soundex, birth_year]]\n";

#[test]
fn a_person_with_twelve_records_and_no_nhs_number_ends_as_one_person() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(11);
    let mut recs = background(&mut rng, 300);
    recs.extend(chain_person(|_| "1971-06-14".into()));
    let out = run_and_link(dir.path(), &[("register", recs)], LINKAGE);
    let person = person_of_record(&out);
    let keys: std::collections::BTreeSet<&String> = (0..12)
        .map(|k| &person[&format!("register/chain{k}")])
        .collect();
    assert_eq!(keys.len(), 1, "the 12 records are one person: {keys:?}");
    let holders = person.values().filter(|p| keys.contains(p)).count();
    assert_eq!(holders, 12, "and nobody else is in that person");
    // The spine of an identity-only run is `person` alone.
    assert!(out.join("linkage/spine/person").is_dir());
    assert!(!out.join("silver").exists());
}

#[test]
fn a_chain_never_joins_two_nhs_numbers_or_incompatible_dates_of_birth() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(12);
    let mut recs = background(&mut rng, 300);
    // Two NHS numbers at the two ends of one chain.
    let mut nhs = chain_person(|_| "1971-06-14".into());
    nhs[0].nhs = "9434765919".into();
    nhs[11].nhs = "4010232137".into();
    recs.extend(nhs);
    // Dates of birth drifting one digit at a time: 14 → 15 → 25 (14 and 25 are not
    // compatible when the same year is not enough).
    let mut drift = chain_person(|k| {
        format!(
            "1964-02-{}",
            match k {
                0..=4 => "14",
                5..=6 => "15",
                _ => "25",
            }
        )
    });
    // The first seven at one address, the last six at another, so each record's
    // direct links reach one step of the drift only.
    for (k, r) in drift.iter_mut().enumerate() {
        r.id = r.id.replace("chain", "drift");
        r.given = "MARGARET".into();
        r.family = "WETHERBY".into();
        r.postcode = if k <= 5 { "LS7 3QA" } else { "LS27 9HN" }.into();
        r.address = if k <= 5 {
            "4 CARR MANOR VIEW"
        } else {
            "61 ELLAND ROAD"
        }
        .into();
    }
    recs.extend(drift);
    let linkage = format!("{LINKAGE}  dob_same_year_compatible: false\n");
    let out = run_and_link(dir.path(), &[("register", recs)], &linkage);
    let person = person_of_record(&out);
    let p = |id: &str| person[&format!("register/{id}")].clone();
    assert_ne!(p("chain0"), p("chain11"), "two NHS numbers never merge");
    let s = summary(&out);
    assert_eq!(s["persons_with_several_nhs_numbers"], 0, "{s}");
    assert!(s["nhs_conflicts_refused"].as_u64().unwrap() > 0, "{s}");
    // The records between the two ends went to one side or the other, not nowhere.
    let sides = (1..11).filter(|k| {
        let x = p(&format!("chain{k}"));
        x == p("chain0") || x == p("chain11")
    });
    assert_eq!(sides.count(), 10);
    assert_ne!(
        p("drift0"),
        p("drift11"),
        "incompatible dates of birth do not chain"
    );
    assert!(s["chaining_refused"].as_u64().unwrap() > 0, "{s}");
    assert_eq!(s["persons_with_conflicting_dob"], 0, "{s}");
    assert_eq!(p("drift0"), p("drift4"));
    assert_eq!(p("drift7"), p("drift11"));
}

#[test]
fn link_only_links_two_registers_and_no_pair_within_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(13);
    let (mut a, mut b) = (vec![], vec![]);
    for p in 0..400 {
        let x = random_person(&mut rng, format!("a{p}"));
        if p < 250 {
            // In both registers (B's copy with a typo now and then).
            let mut y = x.clone();
            y.id = format!("b{p}");
            if p % 3 == 0 {
                y.given.push('E');
            }
            b.push(y);
        } else if p % 2 == 0 {
            // A duplicate within register A only: link-only must not join it.
            let mut y = x.clone();
            y.id = format!("a{p}dup");
            a.push(y);
        }
        a.push(x);
    }
    let out = run_and_link(
        dir.path(),
        &[("reg-a", a.clone()), ("reg-b", b.clone())],
        &format!("{LINKAGE}  link_type: link_only\n"),
    );
    let person = person_of_record(&out);
    for (reg, recs) in [("reg-a", &a), ("reg-b", &b)] {
        let mut seen: HashMap<&String, &String> = HashMap::new();
        for r in recs {
            let k = &person[&format!("{reg}/{}", r.id)];
            if let Some(other) = seen.insert(k, &r.id) {
                panic!(
                    "{reg}: {other} and {} were linked within one register",
                    r.id
                );
            }
        }
    }
    let linked = (0..250)
        .filter(|p| person[&format!("reg-a/a{p}")] == person[&format!("reg-b/b{p}")])
        .count();
    assert!(linked >= 240, "the registers link: {linked} of 250");
    // The same data linked as one run of both kinds joins the duplicates within A.
    let dir2 = tempfile::tempdir().unwrap();
    let out2 = run_and_link(dir2.path(), &[("reg-a", a), ("reg-b", b)], LINKAGE);
    let person2 = person_of_record(&out2);
    let joined = (250..400)
        .step_by(2)
        .filter(|p| person2[&format!("reg-a/a{p}")] == person2[&format!("reg-a/a{p}dup")])
        .count();
    assert!(
        joined >= 70,
        "link_and_dedupe joins duplicates within a source: {joined}"
    );
}

#[test]
fn settings_naming_unknown_attributes_are_refused_with_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(14);
    let recs = background(&mut rng, 20);
    let bad = "  comparisons:\n    - { field: suburb, levels: [exact] }\n";
    std::fs::create_dir_all(dir.path()).unwrap();
    let ics = dir.path().join("ics.yaml");
    let _ = recs;
    std::fs::write(
        &ics,
        format!("ics: {{ id: t, name: T }}\nproviders: []\nlanding: l\nlinkage:\n{bad}"),
    )
    .unwrap();
    let o = onboard(&[
        "link",
        "--out",
        dir.path().join("out").to_str().unwrap(),
        "--ics",
        ics.to_str().unwrap(),
        "--demo-key",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_ne!(code(&o), 0);
    assert!(
        err.contains("linkage.comparisons[0]") && err.contains("suburb"),
        "{err}"
    );
    // Declared, with a level its type does not allow.
    let bad = "  attributes: { suburb: { slot: attribute_1, type: free_text } }\n  comparisons:\n    - { field: suburb, levels: [exact, day_month_swap] }\n";
    std::fs::write(
        &ics,
        format!("ics: {{ id: t, name: T }}\nproviders: []\nlanding: l\nlinkage:\n{bad}"),
    )
    .unwrap();
    let o = onboard(&[
        "link",
        "--out",
        dir.path().join("out").to_str().unwrap(),
        "--ics",
        ics.to_str().unwrap(),
        "--demo-key",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("level `day/month swapped` does not apply to `suburb`"),
        "{err}"
    );
}
