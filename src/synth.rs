//! A synthetic ICS: a landing zone of provider extracts in their native shapes, with
//! real-world faults, and the ground truth to measure linkage and risk against.
//!
//! People are generated one at a time from a seeded generator and written straight to
//! the extract files (bounded memory, whatever the population). They live in real LSOAs
//! of one local authority (IMD 2019), so deprivation is realistic; their postcodes are
//! synthetic (a synthetic postcode → LSOA lookup is written alongside, clearly marked).
//! A known risk process (age, multimorbidity, frailty, deprivation, prior emergency use,
//! noise) drives both the history in the extracts and the emergency admissions in the
//! 90 days after the as-of date, which appear only in `truth/`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{Duration, NaiveDate};
use datafusion::arrow::array::{ArrayRef, RecordBatch, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::parquet::arrow::ArrowWriter;

/// What to generate.
#[derive(Debug, Clone)]
pub struct SynthOptions {
    pub patients: usize,
    pub seed: u64,
    pub out: PathBuf,
    /// Extracts hold events up to this date; outcomes are the 90 days after it.
    pub as_of: NaiveDate,
    /// Local authority whose LSOAs the population lives in.
    pub lad_code: String,
}

impl Default for SynthOptions {
    fn default() -> Self {
        SynthOptions {
            patients: 20_000,
            seed: 42,
            out: PathBuf::from("synth"),
            as_of: NaiveDate::from_ymd_opt(2026, 10, 31).unwrap_or_default(),
            lad_code: "E08000035".into(),
        }
    }
}

/// What was generated.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SynthSummary {
    pub people: usize,
    pub records: u64,
    pub records_by_source: std::collections::BTreeMap<String, u64>,
    pub people_with_emergency_admission_90d: u64,
}

/// SplitMix64: small, fast, and stable across versions (the data must not change when a
/// dependency does).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn f(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, p: f64) -> bool {
        self.f() < p
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
    fn one(&mut self, xs: &[&'static str]) -> &'static str {
        xs[self.below(xs.len())]
    }
    fn poisson(&mut self, lambda: f64) -> usize {
        let l = (-lambda.min(30.0)).exp();
        let mut k = 0;
        let mut p = 1.0;
        loop {
            p *= self.f();
            if p <= l || k > 60 {
                return k;
            }
            k += 1;
        }
    }
}

const MALE: &[&str] = &[
    "James",
    "John",
    "Robert",
    "Michael",
    "William",
    "David",
    "Richard",
    "Thomas",
    "Daniel",
    "Matthew",
    "Andrew",
    "Joseph",
    "Christopher",
    "Mohammed",
    "Ali",
    "Oliver",
    "Harry",
    "George",
    "Jack",
    "Samuel",
    "Peter",
    "Paul",
    "Stephen",
    "Mark",
    "Anthony",
    "Kevin",
    "Ian",
    "Gary",
    "Raj",
    "Arjun",
    "Kwame",
    "Tomasz",
    "Liam",
    "Connor",
    "Ryan",
    "Adam",
    "Noah",
    "Leo",
    "Arthur",
    "Edward",
    "Jose",
];
const FEMALE: &[&str] = &[
    "Mary",
    "Elizabeth",
    "Margaret",
    "Susan",
    "Sarah",
    "Karen",
    "Jennifer",
    "Emma",
    "Olivia",
    "Amelia",
    "Sophie",
    "Jessica",
    "Hannah",
    "Fatima",
    "Aisha",
    "Priya",
    "Grace",
    "Chloe",
    "Lucy",
    "Ellie",
    "Katherine",
    "Patricia",
    "Linda",
    "Barbara",
    "Joanne",
    "Rachel",
    "Nicola",
    "Helen",
    "Amina",
    "Zainab",
    "Agnieszka",
    "Chidinma",
    "Siobhan",
    "Megan",
    "Laura",
    "Rebecca",
    "Victoria",
    "Charlotte",
    "Isla",
    "Ava",
    "Zoe",
    "Renee",
    "Chloe",
];
const SURNAMES: &[&str] = &[
    "Smith",
    "Jones",
    "Taylor",
    "Brown",
    "Williams",
    "Wilson",
    "Johnson",
    "Davies",
    "Robinson",
    "Wright",
    "Thompson",
    "Evans",
    "Walker",
    "White",
    "Roberts",
    "Green",
    "Hall",
    "Wood",
    "Jackson",
    "Clarke",
    "Patel",
    "Khan",
    "Hussain",
    "Ahmed",
    "Begum",
    "Ali",
    "Singh",
    "Kaur",
    "Shah",
    "Mahmood",
    "Lewis",
    "Harris",
    "Martin",
    "Cooper",
    "King",
    "Lee",
    "Baker",
    "Harrison",
    "Morgan",
    "Allen",
    "Young",
    "Scott",
    "Mitchell",
    "Turner",
    "Hill",
    "Moore",
    "Ward",
    "Watson",
    "Morris",
    "Nowak",
    "Kowalski",
    "Okafor",
    "Mensah",
    "O'Brien",
    "Murphy",
    "Kelly",
    "Bell",
    "Parker",
    "Bennett",
    "Shaw",
    "Cook",
    "Richardson",
    "Holmes",
    "Webb",
    "Marshall",
    "Chapman",
    "Fox",
    "Grant",
    "Reid",
    "Hughes",
];
const NICKNAMES: &[(&str, &str)] = &[
    ("Robert", "Bob"),
    ("William", "Bill"),
    ("Richard", "Dick"),
    ("Michael", "Mike"),
    ("James", "Jim"),
    ("Thomas", "Tom"),
    ("Daniel", "Dan"),
    ("Matthew", "Matt"),
    ("Andrew", "Andy"),
    ("Joseph", "Joe"),
    ("Christopher", "Chris"),
    ("Elizabeth", "Liz"),
    ("Margaret", "Maggie"),
    ("Katherine", "Kate"),
    ("Patricia", "Pat"),
    ("Jennifer", "Jen"),
    ("Rebecca", "Becky"),
    ("Victoria", "Vicky"),
    ("Samuel", "Sam"),
    ("Edward", "Ed"),
];
/// Names that need latin-1 (written only by the social-care extract, in latin-1).
const ACCENTED: &[(&str, &str)] = &[
    ("Zoe", "Zoë"),
    ("Jose", "José"),
    ("Siobhan", "Siobhán"),
    ("Renee", "Renée"),
    ("Chloe", "Chloë"),
];

/// NHS DD ethnic category with a rough ICS-wide distribution (per mille).
const ETHNICITY: &[(&str, u32)] = &[
    ("A", 700),
    ("B", 10),
    ("C", 50),
    ("D", 8),
    ("E", 4),
    ("F", 8),
    ("G", 6),
    ("H", 30),
    ("J", 55),
    ("K", 8),
    ("L", 20),
    ("M", 10),
    ("N", 30),
    ("P", 6),
    ("R", 12),
    ("S", 23),
    ("Z", 20),
];

/// Long-term conditions: (key, ICD-10 with dot, SNOMED CT, CTV3).
const CONDITIONS: &[(&str, &str, &str, &str)] = &[
    ("hypertension", "I10.X", "38341003", "XE0Ub"),
    ("diabetes", "E11.9", "44054006", "X40J5"),
    ("copd", "J44.9", "13645005", "H3..."),
    ("heart_failure", "I50.9", "84114007", "G58.."),
    ("ckd", "N18.3", "709044004", "X30Iz"),
    ("atrial_fibrillation", "I48.9", "49436004", "G573."),
    ("dementia", "F03.X", "52448006", "XE1Z6"),
    ("asthma", "J45.9", "195967001", "H33.."),
    ("depression", "F32.9", "35489007", "X00SO"),
    ("stroke", "I63.9", "230690007", "X00D1"),
    ("cancer", "C50.9", "254837009", "B34.."),
];

/// Routine observations: (SNOMED, CTV3, unit, low, high).
const OBSERVATIONS: &[(&str, &str, &str, f64, f64)] = &[
    ("271649006", "2469.", "mmHg", 95.0, 185.0),
    ("27113001", "22A..", "kg", 45.0, 130.0),
    ("60621009", "22K..", "kg/m2", 17.0, 45.0),
    ("1000731000000107", "XaERp", "mmol/mol", 30.0, 110.0),
];

fn nhs_number(p: u64) -> String {
    let mut base = 450_000_000 + p * 7;
    loop {
        let d: Vec<u32> = format!("{base:09}")
            .chars()
            .map(|c| c as u32 - 48)
            .collect();
        let s: u32 = d.iter().enumerate().map(|(i, x)| x * (10 - i as u32)).sum();
        let c = (11 - s % 11) % 11;
        if c != 10 {
            return format!("{base:09}{c}");
        }
        base += 1;
    }
}

/// One synthetic person (the truth).
struct Person {
    id: String,
    nhs: String,
    given: String,
    family: String,
    sex: u8,
    dob: NaiveDate,
    age: i64,
    postcode: String,
    old_postcode: Option<String>,
    lsoa: usize,
    imd_decile: u8,
    ethnicity: &'static str,
    conditions: Vec<usize>,
    frailty: f64,
    prior_emergency: usize,
    practice: usize,
    risk: f64,
}

/// A CSV extract being written.
struct Csv {
    w: csv::Writer<BufWriter<File>>,
    latin1: bool,
    rows: u64,
}

impl Csv {
    fn create(path: &Path, header: &[&str], delimiter: u8, latin1: bool) -> std::io::Result<Csv> {
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d)?;
        }
        let f = BufWriter::with_capacity(1 << 20, File::create(path)?);
        let mut w = csv::WriterBuilder::new()
            .delimiter(delimiter)
            .flexible(true)
            .from_writer(f);
        w.write_record(header).map_err(std::io::Error::other)?;
        Ok(Csv { w, latin1, rows: 0 })
    }
    fn row(&mut self, fields: &[&str]) -> std::io::Result<()> {
        self.rows += 1;
        if self.latin1 {
            let bytes: Vec<Vec<u8>> = fields
                .iter()
                .map(|f| {
                    f.chars()
                        .map(|c| if (c as u32) < 256 { c as u8 } else { b'?' })
                        .collect()
                })
                .collect();
            self.w.write_record(&bytes).map_err(std::io::Error::other)
        } else {
            self.w.write_record(fields).map_err(std::io::Error::other)
        }
    }
    /// A deliberately ragged row (one field short), as seen in hand-edited extracts.
    fn ragged(&mut self, fields: &[&str]) -> std::io::Result<()> {
        self.rows += 1;
        self.w
            .write_record(&fields[..fields.len() - 1])
            .map_err(std::io::Error::other)
    }
    fn finish(mut self) -> std::io::Result<()> {
        self.w.flush()
    }
}

/// The 111 extract is Parquet: buffered into batches.
struct ParquetSink {
    schema: SchemaRef,
    writer: ArrowWriter<File>,
    cols: Vec<StringBuilder>,
    n: usize,
    rows: u64,
}

impl ParquetSink {
    fn create(path: &Path, columns: &[&str]) -> std::io::Result<ParquetSink> {
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d)?;
        }
        let schema = Arc::new(Schema::new(
            columns
                .iter()
                .map(|c| Field::new(*c, DataType::Utf8, true))
                .collect::<Vec<_>>(),
        ));
        let writer = ArrowWriter::try_new(File::create(path)?, schema.clone(), None)
            .map_err(std::io::Error::other)?;
        Ok(ParquetSink {
            schema,
            writer,
            cols: columns.iter().map(|_| StringBuilder::new()).collect(),
            n: 0,
            rows: 0,
        })
    }
    fn row(&mut self, fields: &[Option<&str>]) -> std::io::Result<()> {
        for (b, f) in self.cols.iter_mut().zip(fields) {
            b.append_option(*f);
        }
        self.n += 1;
        self.rows += 1;
        if self.n >= 65_536 {
            self.flush()?;
        }
        Ok(())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        if self.n == 0 {
            return Ok(());
        }
        let arrays: Vec<ArrayRef> = self
            .cols
            .iter_mut()
            .map(|b| Arc::new(b.finish()) as ArrayRef)
            .collect();
        let batch =
            RecordBatch::try_new(self.schema.clone(), arrays).map_err(std::io::Error::other)?;
        self.writer.write(&batch).map_err(std::io::Error::other)?;
        self.n = 0;
        Ok(())
    }
    fn finish(mut self) -> std::io::Result<()> {
        self.flush()?;
        self.writer.close().map_err(std::io::Error::other)?;
        Ok(())
    }
}

struct Writers {
    emis_patients: Vec<Csv>,
    emis_registrations: Vec<Csv>,
    emis_observations: Vec<Csv>,
    s1_patients: Csv,
    s1_codes: Csv,
    apc_spells: Csv,
    apc_diagnoses: Csv,
    op: Csv,
    ecds: Csv,
    csds: Csv,
    mhsds: BufWriter<File>,
    mhsds_rows: u64,
    asc: Csv,
    nhs111: ParquetSink,
    ambulance: Csv,
    truth: Csv,
    outcomes: Csv,
    people: Csv,
}

/// Practices: (ODS code, system). Matches `providers/`.
const PRACTICES: &[(&str, &str)] = &[
    ("F81001", "emis"),
    ("F81002", "emis"),
    ("F81010", "systmone"),
];

fn d_dmy(d: NaiveDate) -> String {
    d.format("%d/%m/%Y").to_string()
}
fn d_iso(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

/// Write a synthetic ICS under `opts.out`: `landing/`, `truth/`, `reference/`.
pub fn generate(opts: &SynthOptions) -> Result<SynthSummary, String> {
    let io = |e: std::io::Error| e.to_string();
    let imd = crate::refdata::imd2019()?;
    let lsoas: Vec<&crate::refdata::ImdRow> =
        imd.iter().filter(|r| r.lad_code == opts.lad_code).collect();
    if lsoas.is_empty() {
        return Err(format!("no LSOAs for local authority {}", opts.lad_code));
    }
    let out = &opts.out;
    let landing = out.join("landing");
    let truth = out.join("truth");
    let reference = out.join("reference");
    for d in [&landing, &truth, &reference] {
        std::fs::create_dir_all(d).map_err(io)?;
    }
    // Synthetic postcodes: 12 per LSOA, shaped like real ones (LS<district> <digit><letters>).
    const INWARD: &[u8] = b"ABDEFGHJLNPQRSTUWXYZ";
    let postcodes: Vec<Vec<String>> = lsoas
        .iter()
        .enumerate()
        .map(|(i, _)| {
            (0..12)
                .map(|k| {
                    let n = i * 12 + k;
                    format!(
                        "LS{} {}{}{}",
                        n % 29 + 1,
                        (n / 29) % 10,
                        INWARD[(n / 290) % 20] as char,
                        INWARD[(n / 5800 + k) % 20] as char
                    )
                })
                .collect()
        })
        .collect();
    {
        let mut lk = Csv::create(
            &reference.join("postcode_lsoa11_SYNTHETIC.csv"),
            &["postcode", "lsoa11"],
            b',',
            false,
        )
        .map_err(io)?;
        for (i, pcs) in postcodes.iter().enumerate() {
            for p in pcs {
                lk.row(&[p, &lsoas[i].lsoa11]).map_err(io)?;
            }
        }
        lk.finish().map_err(io)?;
        std::fs::write(
            reference.join("README.txt"),
            "postcode_lsoa11_SYNTHETIC.csv is SYNTHETIC: made-up postcodes assigned to real LSOA 2011 codes of the chosen local authority.\n\
             It is not the ONS Postcode Directory and must never be used for real data. onboard's loader also reads the ONSPD format (pcds, lsoa11).\n",
        )
        .map_err(io)?;
    }

    let emis_ods: Vec<&str> = PRACTICES
        .iter()
        .filter(|p| p.1 == "emis")
        .map(|p| p.0)
        .collect();
    let mut w = Writers {
        emis_patients: emis_ods
            .iter()
            .map(|o| {
                Csv::create(
                    &landing.join(format!("gp/emis/{o}/patients_20261031.csv")),
                    &[
                        "PatientGuid",
                        "NHSNumber",
                        "Forenames",
                        "Surname",
                        "DateOfBirth",
                        "Sex",
                        "Postcode",
                        "EthnicOrigin",
                    ],
                    b',',
                    false,
                )
            })
            .collect::<Result<_, _>>()
            .map_err(io)?,
        emis_registrations: emis_ods
            .iter()
            .map(|o| {
                Csv::create(
                    &landing.join(format!("gp/emis/{o}/registrations_20261031.csv")),
                    &[
                        "PatientGuid",
                        "NHSNumber",
                        "DateOfBirth",
                        "RegisteredDate",
                        "DeregisteredDate",
                        "RegistrationType",
                    ],
                    b',',
                    false,
                )
            })
            .collect::<Result<_, _>>()
            .map_err(io)?,
        emis_observations: emis_ods
            .iter()
            .map(|o| {
                Csv::create(
                    &landing.join(format!("gp/emis/{o}/observations_20261031.csv")),
                    &[
                        "ObservationGuid",
                        "PatientGuid",
                        "EffectiveDate",
                        "SnomedCTConceptId",
                        "Value",
                        "NumericUnit",
                    ],
                    b',',
                    false,
                )
            })
            .collect::<Result<_, _>>()
            .map_err(io)?,
        s1_patients: Csv::create(
            &landing.join("gp/systmone/F81010/SRPatient_20261031.csv"),
            &[
                "Patient ID",
                "NHS Number",
                "First Name",
                "Surname",
                "Date Of Birth",
                "Gender",
                "Postcode",
                "Ethnicity",
            ],
            b'|',
            false,
        )
        .map_err(io)?,
        s1_codes: Csv::create(
            &landing.join("gp/systmone/F81010/SRCode_20261031.csv"),
            &[
                "RowIdentifier",
                "IDPatient",
                "DateEvent",
                "CTV3Code",
                "NumericValue",
            ],
            b'|',
            false,
        )
        .map_err(io)?,
        apc_spells: Csv::create(
            &landing.join("acute/RXX/apc_spells_2026.csv"),
            &[
                "SpellID",
                "NHSNumber",
                "LocalPatientID",
                "DOB",
                "Sex",
                "Postcode",
                "EthnicCategory",
                "AdmissionDate",
                "DischargeDate",
                "AdmissionMethod",
                "AdmissionSource",
                "DischargeMethod",
                "HRG",
                "Cost",
                "SiteCode",
            ],
            b',',
            false,
        )
        .map_err(io)?,
        apc_diagnoses: Csv::create(
            &landing.join("acute/RXX/apc_diagnoses_2026.csv"),
            &[
                "SpellID",
                "LocalPatientID",
                "Position",
                "ICD10",
                "DiagnosisDate",
            ],
            b',',
            false,
        )
        .map_err(io)?,
        op: Csv::create(
            &landing.join("acute/RXX/op_attendances_2026.csv"),
            &[
                "AttendanceID",
                "NHSNumber",
                "LocalPatientID",
                "DOB",
                "Sex",
                "Postcode",
                "AppointmentDate",
                "AttendanceStatus",
                "FirstAttendance",
                "TreatmentFunction",
                "HRG",
                "Cost",
            ],
            b',',
            false,
        )
        .map_err(io)?,
        ecds: Csv::create(
            &landing.join("acute/RXX/ecds_2026.csv"),
            &[
                "ECDS_ID",
                "NHS_NUMBER",
                "LOCAL_PATIENT_ID",
                "PERSON_BIRTH_DATE",
                "STATED_GENDER",
                "POSTCODE",
                "ETHNIC_CATEGORY",
                "ARRIVAL_DATE",
                "ARRIVAL_TIME",
                "DEPARTURE_DATE",
                "DEPARTMENT_TYPE",
                "ATTENDANCE_CATEGORY",
                "CHIEF_COMPLAINT",
                "ACUITY",
                "DISCHARGE_STATUS",
                "COST",
            ],
            b',',
            false,
        )
        .map_err(io)?,
        csds: Csv::create(
            &landing.join("community/RYA/csds_contacts_2026.csv"),
            &[
                "CareContactID",
                "NHSNumber",
                "PersonBirthDate",
                "Gender",
                "Postcode",
                "EthnicCategory",
                "CareContactDate",
                "ServiceTypeReferredTo",
                "ConsultationMediumUsed",
                "AttendanceStatus",
            ],
            b',',
            false,
        )
        .map_err(io)?,
        mhsds: {
            let p = landing.join("mental_health/RXA/mhsds_contacts_2026.ndjson");
            std::fs::create_dir_all(p.parent().unwrap_or(&landing)).map_err(io)?;
            BufWriter::with_capacity(1 << 20, File::create(p).map_err(io)?)
        },
        mhsds_rows: 0,
        asc: Csv::create(
            &landing.join("social_care/E08000035/asc_cld_2026.csv"),
            &[
                "LA_Person_Unique_Identifier",
                "Forename",
                "Surname",
                "NHS_Number",
                "Date_of_Birth",
                "Gender",
                "Ethnicity",
                "Postcode",
                "Event_Type",
                "Event_Start_Date",
                "Event_End_Date",
                "Service_Type",
                "Service_Component",
                "Primary_Support_Reason",
                "Unit_Cost",
                "Cost_Frequency",
                "Planned_units_per_week",
            ],
            b',',
            true,
        )
        .map_err(io)?,
        nhs111: ParquetSink::create(
            &landing.join("urgent_care/nhs111/calls_2026.parquet"),
            &[
                "CallID",
                "NHSNumber",
                "DOB",
                "Sex",
                "Postcode",
                "CallStartTime",
                "Disposition",
            ],
        )
        .map_err(io)?,
        ambulance: Csv::create(
            &landing.join("urgent_care/ambulance/incidents_2026.csv"),
            &[
                "IncidentID",
                "NHSNo",
                "DateOfBirth",
                "Gender",
                "IncidentPostcode",
                "CallDateTime",
                "Category",
                "Outcome",
                "ConveyedToSite",
            ],
            b',',
            false,
        )
        .map_err(io)?,
        truth: Csv::create(
            &truth.join("person_records.csv"),
            &[
                "provider_id",
                "source",
                "source_record_id",
                "true_person_id",
            ],
            b',',
            false,
        )
        .map_err(io)?,
        outcomes: Csv::create(
            &truth.join("outcomes_90d.csv"),
            &[
                "true_person_id",
                "as_of_date",
                "horizon_days",
                "emergency_admissions",
                "first_admission_date",
                "risk_probability",
            ],
            b',',
            false,
        )
        .map_err(io)?,
        people: Csv::create(
            &truth.join("people.csv"),
            &[
                "true_person_id",
                "nhs_number",
                "sex",
                "birth_year",
                "age",
                "lsoa11",
                "imd_decile",
                "ethnic_category",
                "conditions",
                "frailty",
                "prior_emergency_admissions_12m",
                "practice_ods",
                "twin_of",
            ],
            b',',
            false,
        )
        .map_err(io)?,
    };
    let mut rng = Rng(opts.seed ^ 0x5eed_0b0a_4d00);
    let mut summary = SynthSummary {
        people: opts.patients,
        ..Default::default()
    };
    let mut twin_of: Option<(usize, NaiveDate, String, String, usize, &'static str)> = None;
    for p in 0..opts.patients {
        let mut person = make_person(&mut rng, p, opts.as_of, &lsoas, &postcodes);
        let mut twin = String::new();
        if let Some((q, dob, family, postcode, lsoa, eth)) = twin_of.take() {
            person.dob = dob;
            person.age = ((opts.as_of - dob).num_days() / 365) as i64;
            person.family = family;
            person.postcode = postcode;
            person.lsoa = lsoa;
            person.imd_decile = lsoas[lsoa].decile;
            person.ethnicity = eth;
            twin = format!("T{q:07}");
        } else if rng.chance(0.01) {
            twin_of = Some((
                p,
                person.dob,
                person.family.clone(),
                person.postcode.clone(),
                person.lsoa,
                person.ethnicity,
            ));
        }
        write_person(&mut rng, &person, opts, &lsoas, &mut w, &mut summary, &twin).map_err(io)?;
    }
    for (name, list) in [
        ("gp/emis/patients", &w.emis_patients),
        ("gp/emis/registrations", &w.emis_registrations),
        ("gp/emis/observations", &w.emis_observations),
    ] {
        let n: u64 = list.iter().map(|c| c.rows).sum();
        *summary.records_by_source.entry(name.into()).or_default() += n;
        summary.records += n;
    }
    for c in w
        .emis_patients
        .drain(..)
        .chain(w.emis_registrations.drain(..))
        .chain(w.emis_observations.drain(..))
    {
        c.finish().map_err(io)?;
    }
    let counts = [
        ("gp/systmone/patients", w.s1_patients.rows),
        ("gp/systmone/coded_events", w.s1_codes.rows),
        ("acute/apc_spells", w.apc_spells.rows),
        ("acute/apc_diagnoses", w.apc_diagnoses.rows),
        ("acute/op_attendances", w.op.rows),
        ("acute/ecds", w.ecds.rows),
        ("community/csds_contacts", w.csds.rows),
        ("mental_health/mhsds_contacts", w.mhsds_rows),
        ("social_care/asc_cld", w.asc.rows),
        ("urgent_care/nhs111_calls", w.nhs111.rows),
        ("urgent_care/ambulance_incidents", w.ambulance.rows),
    ];
    for (k, v) in counts {
        *summary.records_by_source.entry(k.into()).or_default() += v;
        summary.records += v;
    }
    for c in [
        w.s1_patients,
        w.s1_codes,
        w.apc_spells,
        w.apc_diagnoses,
        w.op,
        w.ecds,
        w.csds,
        w.asc,
        w.ambulance,
        w.truth,
        w.outcomes,
        w.people,
    ] {
        c.finish().map_err(io)?;
    }
    w.mhsds.flush().map_err(io)?;
    w.nhs111.finish().map_err(io)?;
    std::fs::write(
        out.join("synth.json"),
        serde_json::to_string_pretty(&summary).unwrap_or_default(),
    )
    .map_err(io)?;
    Ok(summary)
}

fn make_person(
    rng: &mut Rng,
    p: usize,
    as_of: NaiveDate,
    lsoas: &[&crate::refdata::ImdRow],
    postcodes: &[Vec<String>],
) -> Person {
    let sex = if rng.chance(0.5) { 1 } else { 2 };
    let band = rng.f();
    let age = if band < 0.20 {
        rng.below(18)
    } else if band < 0.48 {
        18 + rng.below(22)
    } else if band < 0.80 {
        40 + rng.below(25)
    } else if band < 0.94 {
        65 + rng.below(15)
    } else {
        80 + rng.below(20)
    } as i64;
    let dob = as_of - Duration::days(age * 365 + rng.below(365) as i64 + age / 4);
    let given = if sex == 1 {
        rng.pick(MALE)
    } else {
        rng.pick(FEMALE)
    }
    .to_string();
    let lsoa = rng.below(lsoas.len());
    let postcode = rng.pick(&postcodes[lsoa]).clone();
    let old_postcode = rng.chance(0.10).then(|| {
        let l = rng.below(lsoas.len());
        rng.pick(&postcodes[l]).clone()
    });
    let mut roll = rng.below(1000) as u32;
    let mut ethnicity = "A";
    for (code, w) in ETHNICITY {
        if roll < *w {
            ethnicity = code;
            break;
        }
        roll -= w;
    }
    let imd_decile = lsoas[lsoa].decile;
    let deprivation = (10 - imd_decile as i64) as f64 / 9.0;
    let lambda = 0.05 + (age as f64 / 28.0).powf(1.6) * 0.35 + deprivation * 0.4;
    let n_cond = rng.poisson(lambda).min(CONDITIONS.len());
    let mut conditions: Vec<usize> = Vec::new();
    while conditions.len() < n_cond {
        let c = rng.below(CONDITIONS.len());
        if !conditions.contains(&c) {
            conditions.push(c);
        }
    }
    conditions.sort();
    let frailty = if age >= 65 {
        ((age - 65) as f64 / 30.0 * 0.5 + n_cond as f64 * 0.06 + rng.f() * 0.1).min(1.0)
    } else {
        0.0
    };
    let base = -4.6
        + 0.018 * (age as f64 - 50.0)
        + 0.30 * n_cond as f64
        + 1.2 * frailty
        + 0.5 * deprivation;
    let prior_emergency = rng.poisson(4.0 * (1.0 / (1.0 + (-base).exp())));
    let logit = base + 0.55 * prior_emergency as f64 + (rng.f() - 0.5) * 0.8;
    Person {
        id: format!("T{p:07}"),
        nhs: nhs_number(p as u64),
        given,
        family: rng.pick(SURNAMES).to_string(),
        sex,
        dob,
        age,
        postcode,
        old_postcode,
        lsoa,
        imd_decile,
        ethnicity,
        conditions,
        frailty,
        prior_emergency,
        practice: rng.below(PRACTICES.len()),
        risk: 1.0 / (1.0 + (-logit).exp()),
    }
}

/// A typo: two neighbouring letters swapped.
fn typo(rng: &mut Rng, s: &str) -> String {
    let mut c: Vec<char> = s.chars().collect();
    if c.len() > 3 {
        let i = 1 + rng.below(c.len() - 2);
        c.swap(i, i + 1);
    }
    c.into_iter().collect()
}

#[allow(clippy::too_many_arguments)]
fn write_person(
    rng: &mut Rng,
    p: &Person,
    opts: &SynthOptions,
    lsoas: &[&crate::refdata::ImdRow],
    w: &mut Writers,
    summary: &mut SynthSummary,
    twin: &str,
) -> std::io::Result<()> {
    let as_of = opts.as_of;
    let truth = |w: &mut Writers, provider: &str, source: &str, id: &str| {
        w.truth.row(&[provider, source, id, &p.id])
    };
    // How other systems record the person: missing or mistyped NHS numbers, nicknames,
    // typos, day/month swaps, stale postcodes.
    let nhs_as = |rng: &mut Rng, missing: f64| -> String {
        if rng.chance(missing) {
            String::new()
        } else if rng.chance(0.005) {
            let mut s: Vec<char> = p.nhs.chars().collect();
            s[9] = char::from(b'0' + ((s[9] as u8 - b'0' + 1) % 10));
            s.into_iter().collect()
        } else {
            p.nhs.clone()
        }
    };
    let dob_as = |rng: &mut Rng| -> NaiveDate {
        use chrono::Datelike;
        if rng.chance(0.01) && p.dob.day() <= 12 && p.dob.day() != p.dob.month() {
            NaiveDate::from_ymd_opt(p.dob.year(), p.dob.day(), p.dob.month()).unwrap_or(p.dob)
        } else {
            p.dob
        }
    };
    let postcode_as = |rng: &mut Rng| -> String {
        match &p.old_postcode {
            Some(old) if rng.chance(0.5) => old.clone(),
            _ => p.postcode.clone(),
        }
    };
    let day_in_last =
        |rng: &mut Rng, days: usize| as_of - Duration::days(1 + rng.below(days) as i64);
    let cond_codes: Vec<&(&str, &str, &str, &str)> =
        p.conditions.iter().map(|c| &CONDITIONS[*c]).collect();

    // Names as other systems hold them: nicknames and typos.
    let given_as = |rng: &mut Rng| -> String {
        if rng.chance(0.03)
            && let Some((_, nick)) = NICKNAMES.iter().find(|(f, _)| *f == p.given)
        {
            return nick.to_string();
        }
        if rng.chance(0.02) {
            typo(rng, &p.given)
        } else {
            p.given.clone()
        }
    };
    let family_as = |rng: &mut Rng| -> String {
        if rng.chance(0.02) {
            typo(rng, &p.family)
        } else {
            p.family.clone()
        }
    };

    // GP record at the registered practice.
    let (ods, system) = PRACTICES[p.practice];
    let eth_recorded = rng.chance(0.70);
    let gp_local = format!("{}-{:07}", ods, p.id[1..].parse::<u64>().unwrap_or(0));
    let reg_start = as_of - Duration::days(30 + rng.below(365 * 15) as i64).min(as_of - p.dob);
    if system == "emis" {
        let e = PRACTICES
            .iter()
            .filter(|x| x.1 == "emis")
            .position(|x| x.0 == ods)
            .unwrap_or(0);
        let eth_text = if eth_recorded {
            emis_ethnicity_text(p.ethnicity)
        } else {
            ""
        };
        let dob = if rng.chance(0.05) {
            d_iso(p.dob)
        } else {
            d_dmy(p.dob)
        };
        let dob = if rng.chance(0.001) {
            "31/02/1980".to_string()
        } else {
            dob
        };
        let sex = if p.sex == 1 { "M" } else { "F" };
        let copies = if rng.chance(0.005) { 2 } else { 1 };
        for k in 0..copies {
            // A duplicate registration: new GUID, often with a name variant.
            let (guid, given, family) = if k == 0 {
                (gp_local.clone(), p.given.clone(), p.family.clone())
            } else {
                (format!("{gp_local}-DUP"), given_as(rng), family_as(rng))
            };
            w.emis_patients[e].row(&[
                &guid,
                &p.nhs,
                &given,
                &family,
                &dob,
                sex,
                &p.postcode,
                eth_text,
            ])?;
            truth(
                w,
                &format!("emis-{}", ods.to_lowercase()),
                "patients",
                &guid,
            )?;
        }
        w.emis_registrations[e].row(&[
            &gp_local,
            &p.nhs,
            &d_dmy(p.dob),
            &d_dmy(reg_start),
            "",
            "GMS",
        ])?;
        truth(
            w,
            &format!("emis-{}", ods.to_lowercase()),
            "registrations",
            &gp_local,
        )?;
        let n_obs = 1 + p.conditions.len() * 2 + rng.poisson(1.0 + p.age as f64 / 25.0);
        for k in 0..n_obs {
            let id = format!("{gp_local}-O{k}");
            let date = day_in_last(rng, 730);
            let (code, value, unit) = if k < p.conditions.len() {
                (cond_codes[k].2.to_string(), String::new(), String::new())
            } else {
                let o = rng.pick(OBSERVATIONS);
                (
                    o.0.to_string(),
                    format!("{:.1}", o.3 + rng.f() * (o.4 - o.3)),
                    o.2.to_string(),
                )
            };
            let row = [
                id.as_str(),
                gp_local.as_str(),
                &d_dmy(date),
                &code,
                &value,
                &unit,
            ];
            if rng.chance(0.00005) {
                w.emis_observations[e].ragged(&row)?;
            } else {
                w.emis_observations[e].row(&row)?;
            }
            truth(
                w,
                &format!("emis-{}", ods.to_lowercase()),
                "observations",
                &id,
            )?;
        }
    } else {
        let s1_id = format!("{}", 500_000_000 + p.id[1..].parse::<u64>().unwrap_or(0));
        let nhs_spaced = format!("{} {} {}", &p.nhs[..3], &p.nhs[3..6], &p.nhs[6..]);
        let eth = if eth_recorded {
            ctv3_ethnicity_text(p.ethnicity)
        } else {
            ""
        };
        w.s1_patients.row(&[
            &s1_id,
            &nhs_spaced,
            &given_as(rng),
            &family_as(rng),
            &format!("{} 00:00:00", d_iso(p.dob)),
            if p.sex == 1 { "Male" } else { "Female" },
            &p.postcode,
            eth,
        ])?;
        truth(w, "systmone-f81010", "patients", &s1_id)?;
        let n = 1 + p.conditions.len() + rng.poisson(1.0 + p.age as f64 / 30.0);
        for k in 0..n {
            let id = format!("{s1_id}-{k}");
            let date = day_in_last(rng, 730);
            let (code, value) = if k < p.conditions.len() {
                (cond_codes[k].3.to_string(), String::new())
            } else {
                let o = rng.pick(OBSERVATIONS);
                (
                    o.1.to_string(),
                    format!("{:.1}", o.3 + rng.f() * (o.4 - o.3)),
                )
            };
            w.s1_codes.row(&[
                &id,
                &s1_id,
                &format!("{} 10:{:02}:00", d_iso(date), rng.below(60)),
                &code,
                &value,
            ])?;
            truth(w, "systmone-f81010", "coded_events", &id)?;
        }
    }

    // Acute trust: admitted spells (emergency history drives future risk), diagnoses.
    let hosp = format!("H{:07}", p.id[1..].parse::<u64>().unwrap_or(0));
    let electives = rng.poisson(0.04 + 0.03 * p.conditions.len() as f64);
    let mut spell_no = 0;
    for k in 0..(p.prior_emergency + electives) {
        let emergency = k < p.prior_emergency;
        let adm = day_in_last(rng, 365);
        let los = if emergency {
            rng.poisson(4.0 + 3.0 * p.frailty)
        } else {
            rng.poisson(0.6)
        };
        let dis = adm + Duration::days(los as i64);
        if dis > as_of {
            continue;
        }
        spell_no += 1;
        let id = format!("S{}-{spell_no}", &p.id[1..]);
        let method = if emergency {
            rng.one(&["21", "21", "21", "22", "2A", "2B", "2D", "24"])
        } else {
            rng.one(&["11", "12", "13"])
        };
        let eth = if rng.chance(0.92) { p.ethnicity } else { "" };
        let sex = p.sex.to_string();
        let cost = format!(
            "{:.2}",
            if emergency {
                1800.0 + los as f64 * 420.0
            } else {
                950.0 + rng.f() * 1500.0
            }
        );
        let dob = dob_as(rng);
        let nhs = nhs_as(rng, 0.03);
        let pc = postcode_as(rng);
        w.apc_spells.row(&[
            &id,
            &nhs,
            &hosp,
            &d_iso(dob),
            &sex,
            &pc,
            eth,
            &format!("{} {:02}:{:02}", d_iso(adm), rng.below(24), rng.below(60)),
            &d_iso(dis),
            method,
            if emergency { "19" } else { "51" },
            "1",
            if emergency { "FD01A" } else { "HC12B" },
            &cost,
            "RXX01",
        ])?;
        truth(w, "acute-rxx", "spells", &id)?;
        let n_diag = 1 + rng.below(3).min(cond_codes.len());
        for pos in 1..=n_diag {
            let code = if pos <= cond_codes.len() {
                cond_codes[pos - 1].1
            } else {
                "R69.X"
            };
            let code = if rng.chance(0.5) {
                code.replace('.', "")
            } else {
                code.to_string()
            };
            w.apc_diagnoses
                .row(&[&id, &hosp, &pos.to_string(), &code, &d_iso(adm)])?;
            truth(w, "acute-rxx", "diagnoses", &format!("{id}-{pos}"))?;
        }
        if method == "21" {
            write_ecds(rng, p, w, &hosp, adm, true, &nhs, dob)?;
        }
    }
    for k in 0..rng.poisson(0.25 + 0.35 * p.conditions.len() as f64) {
        let id = format!("OP{}-{k}", &p.id[1..]);
        let date = day_in_last(rng, 365);
        let first = if k == 0 {
            "1"
        } else {
            rng.one(&["2", "2", "4"])
        };
        let status = rng.one(&["5", "5", "5", "5", "6", "3", "2", "7"]);
        let nhs = nhs_as(rng, 0.03);
        let dob = dob_as(rng);
        w.op.row(&[
            &id,
            &nhs,
            &hosp,
            &d_iso(dob),
            &p.sex.to_string(),
            &postcode_as(rng),
            &d_iso(date),
            status,
            first,
            rng.one(&["100", "110", "300", "320", "330", "340", "430"]),
            "WF01A",
            &format!("{:.2}", 120.0 + rng.f() * 160.0),
        ])?;
        truth(w, "acute-rxx-op", "attendances", &id)?;
    }
    for _ in
        0..rng.poisson(0.12 + 0.08 * p.conditions.len() as f64 + 0.3 * p.prior_emergency as f64)
    {
        let nhs = nhs_as(rng, 0.04);
        let dob = dob_as(rng);
        let date = day_in_last(rng, 365);
        write_ecds(rng, p, w, &hosp, date, false, &nhs, dob)?;
    }

    // Community and mental health.
    if p.age >= 65 && p.conditions.len() >= 2 || rng.chance(0.03) {
        for k in 0..rng.poisson(1.0 + 2.0 * p.frailty) {
            let id = format!("C{}-{k}", &p.id[1..]);
            let pc = postcode_as(rng);
            let nhs = nhs_as(rng, 0.05);
            w.csds.row(&[
                &id,
                &nhs,
                &d_iso(dob_as(rng)),
                &p.sex.to_string(),
                &pc,
                if rng.chance(0.8) { p.ethnicity } else { "99" },
                &d_iso(day_in_last(rng, 365)),
                rng.one(&["301", "302", "312", "345"]),
                "01",
                rng.one(&["5", "5", "5", "6", "2", "3"]),
            ])?;
            truth(w, "community-rya", "contacts", &id)?;
        }
    }
    if rng.chance(
        0.04 + 0.03
            * p.conditions
                .iter()
                .filter(|c| CONDITIONS[**c].0 == "depression")
                .count() as f64
            * 5.0,
    ) {
        for k in 0..(1 + rng.poisson(4.0)) {
            let id = format!("M{}-{k}", &p.id[1..]);
            let nhs = nhs_as(rng, 0.05);
            let obj = serde_json::json!({
                "CareContactId": id, "NHSNumber": if nhs.is_empty() { serde_json::Value::Null } else { serde_json::Value::String(nhs) },
                "PersonBirthDate": d_iso(dob_as(rng)), "GenderIdentity": if rng.chance(0.02) { "Z".to_string() } else { p.sex.to_string() },
                "EthnicCategory": p.ethnicity, "Postcode": postcode_as(rng), "CareContDate": d_iso(day_in_last(rng, 365)),
                "ServTeamTypeRefToMH": rng.one(&["A05", "C02", "C10", "E01"]), "AttendOrDNACode": rng.one(&["5", "5", "6", "7", "2"]),
            });
            writeln!(w.mhsds, "{obj}")?;
            w.mhsds_rows += 1;
            truth(w, "mental-health-rxa", "contacts", &id)?;
        }
    }

    // Adult social care: often without NHS number; names may need latin-1.
    if (p.age >= 65 && p.frailty > 0.35 && rng.chance(0.6)) || rng.chance(0.005) {
        let la_id = format!("LA{:07}", p.id[1..].parse::<u64>().unwrap_or(0) * 3 + 1);
        let nhs = nhs_as(rng, 0.40);
        // Accented names survive only in the latin-1 extract.
        let given = ACCENTED
            .iter()
            .find(|(plain, _)| *plain == p.given)
            .map(|(_, a)| a.to_string())
            .unwrap_or_else(|| given_as(rng));
        let family = family_as(rng);
        for (event, service) in [
            ("Assessment", "Short Term Support"),
            (
                "Service",
                if p.frailty > 0.6 {
                    "Long Term Support: Residential"
                } else {
                    "Long Term Support: Community"
                },
            ),
            ("Review", "Long Term Support: Community"),
        ]
        .iter()
        .take(1 + rng.below(3))
        {
            let start = day_in_last(rng, 365);
            let end = if *event == "Service" && rng.chance(0.5) {
                String::new()
            } else {
                d_dmy(start + Duration::days(rng.below(60) as i64))
            };
            let id = format!("{la_id}|{event}|{}", d_dmy(start));
            w.asc.row(&[
                &la_id,
                &given,
                &family,
                &nhs,
                &d_dmy(dob_as(rng)),
                if p.sex == 1 { "Male" } else { "Female" },
                asc_ethnicity_text(p.ethnicity),
                &postcode_as(rng),
                event,
                &d_dmy(start),
                &end,
                service,
                if *event == "Service" { "Home Care" } else { "" },
                rng.one(&[
                    "Physical Support: Personal Care Support",
                    "Memory and Cognition Support",
                    "Physical Support: Access and Mobility Only",
                ]),
                &format!("{:.2}", 150.0 + rng.f() * 800.0),
                if *event == "Service" {
                    "Weekly"
                } else {
                    "One-off"
                },
                &format!("{}", 2 + rng.below(20)),
            ])?;
            truth(w, "social-care-e08000035", "events", &id)?;
        }
    }

    // Urgent care: 111 calls and ambulance incidents.
    for k in 0..rng.poisson(0.15 + 0.2 * p.prior_emergency as f64) {
        let id = format!("111-{}-{k}", &p.id[1..]);
        let nhs = nhs_as(rng, 0.10);
        let t = day_in_last(rng, 365);
        w.nhs111.row(&[
            Some(&id),
            (!nhs.is_empty()).then_some(nhs.as_str()),
            Some(&d_iso(dob_as(rng))),
            Some(if p.sex == 1 { "M" } else { "F" }),
            Some(&postcode_as(rng)),
            Some(&format!(
                "{} {:02}:{:02}:00",
                d_iso(t),
                rng.below(24),
                rng.below(60)
            )),
            Some(rng.one(&["Dx02", "Dx05", "Dx11", "Dx75", "Dx06"])),
        ])?;
        truth(w, "nhs111-nwas", "calls", &id)?;
    }
    for k in 0..rng.poisson(0.03 + 0.35 * p.prior_emergency as f64) {
        let id = format!("AMB-{}-{k}", &p.id[1..]);
        let nhs = nhs_as(rng, 0.15);
        let t = day_in_last(rng, 365);
        let outcome = rng.one(&["CONVEY", "CONVEY", "ST", "HT"]);
        w.ambulance.row(&[
            &id,
            &nhs,
            &d_dmy(dob_as(rng)),
            if p.sex == 1 { "M" } else { "F" },
            &postcode_as(rng),
            &format!("{} {:02}:{:02}", d_dmy(t), rng.below(24), rng.below(60)),
            rng.one(&["C1", "C2", "C2", "C3", "C4"]),
            outcome,
            if outcome == "CONVEY" { "RXX01" } else { "" },
        ])?;
        truth(w, "ambulance-yas", "incidents", &id)?;
    }

    // Truth: the next 90 days.
    let admitted = rng.chance(p.risk);
    let (n_adm, first) = if admitted {
        let n = 1 + usize::from(rng.chance(0.15));
        (n, d_iso(as_of + Duration::days(1 + rng.below(90) as i64)))
    } else {
        (0, String::new())
    };
    if admitted {
        summary.people_with_emergency_admission_90d += 1;
    }
    w.outcomes.row(&[
        &p.id,
        &d_iso(as_of),
        "90",
        &n_adm.to_string(),
        &first,
        &format!("{:.5}", p.risk),
    ])?;
    use chrono::Datelike;
    let conds: Vec<&str> = p.conditions.iter().map(|c| CONDITIONS[*c].0).collect();
    w.people.row(&[
        &p.id,
        &p.nhs,
        &p.sex.to_string(),
        &p.dob.year().to_string(),
        &p.age.to_string(),
        &lsoas[p.lsoa].lsoa11,
        &p.imd_decile.to_string(),
        p.ethnicity,
        &conds.join(";"),
        &format!("{:.3}", p.frailty),
        &p.prior_emergency.to_string(),
        PRACTICES[p.practice].0,
        twin,
    ])?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn write_ecds(
    rng: &mut Rng,
    p: &Person,
    w: &mut Writers,
    hosp: &str,
    date: NaiveDate,
    admitted: bool,
    nhs: &str,
    dob: NaiveDate,
) -> std::io::Result<()> {
    let id = format!("E{}-{}", &p.id[1..], w.ecds.rows);
    let dept = if admitted {
        "01"
    } else {
        rng.one(&["01", "01", "01", "03", "03", "04", "05"])
    };
    let gender = match p.sex {
        1 => "1",
        _ if rng.chance(0.01) => "X",
        _ => "2",
    };
    let eth = if rng.chance(0.85) { p.ethnicity } else { "" };
    w.ecds.row(&[
        &id,
        nhs,
        hosp,
        &dob.format("%Y%m%d").to_string(),
        gender,
        &p.postcode,
        eth,
        &date.format("%Y%m%d").to_string(),
        &format!("{:02}:{:02}", rng.below(24), rng.below(60)),
        &date.format("%Y%m%d").to_string(),
        dept,
        "1",
        rng.one(&["21522001", "29857009", "267036007", "422587007"]),
        rng.one(&["1077251000000100", "1077241000000103", "1064891000000107"]),
        if admitted { "306706006" } else { "182992009" },
        &format!("{:.2}", 180.0 + rng.f() * 250.0),
    ])?;
    w.truth.row(&["acute-rxx-ecds", "attendances", &id, &p.id])
}

fn emis_ethnicity_text(code: &str) -> &'static str {
    match code {
        "A" => "White - British",
        "B" => "White - Irish",
        "C" => "White - any other White background",
        "D" => "Mixed - White and Black Caribbean",
        "E" => "Mixed - White and Black African",
        "F" => "Mixed - White and Asian",
        "G" => "Mixed - any other mixed background",
        "H" => "Asian or Asian British - Indian",
        "J" => "Asian or Asian British - Pakistani",
        "K" => "Asian or Asian British - Bangladeshi",
        "L" => "Asian or Asian British - any other Asian background",
        "M" => "Black or Black British - Caribbean",
        "N" => "Black or Black British - African",
        "P" => "Black or Black British - any other Black background",
        "R" => "Chinese",
        "S" => "Other ethnic group - any other ethnic group",
        _ => "Ethnic category not stated",
    }
}

fn ctv3_ethnicity_text(code: &str) -> &'static str {
    match code {
        "A" => "White British",
        "B" => "White Irish",
        "C" => "Other White",
        "D" => "White and Black Caribbean",
        "E" => "White and Black African",
        "F" => "White and Asian",
        "G" => "Other Mixed",
        "H" => "Indian",
        "J" => "Pakistani",
        "K" => "Bangladeshi",
        "L" => "Other Asian",
        "M" => "Caribbean",
        "N" => "African",
        "P" => "Other Black",
        "R" => "Chinese",
        "S" => "Other",
        _ => "Not stated",
    }
}

fn asc_ethnicity_text(code: &str) -> &'static str {
    match code {
        "A" => "White: English, Welsh, Scottish, Northern Irish or British",
        "B" => "White: Irish",
        "C" => "White: Other White",
        "D" => "Mixed or Multiple ethnic groups: White and Black Caribbean",
        "E" | "G" => "Mixed or Multiple ethnic groups: White and Black Caribbean",
        "F" => "Mixed or Multiple ethnic groups: White and Asian",
        "H" => "Asian or Asian British: Indian",
        "J" => "Asian or Asian British: Pakistani",
        "K" => "Asian or Asian British: Bangladeshi",
        "L" => "Asian or Asian British: Other Asian",
        "R" => "Asian or Asian British: Chinese",
        "M" => "Black, Black British, Caribbean or African: Caribbean",
        "N" | "P" => "Black, Black British, Caribbean or African: African",
        "S" => "Other ethnic group: Any other ethnic group",
        _ => "Not Stated",
    }
}
