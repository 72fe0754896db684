//! The one diagnostic model of `onboard` and its renderers.
//!
//! Every problem found in a manifest (or, later, in data) is a [`Diagnostic`]: a stable
//! code from the [`codes`] registry, a severity, a location (`file:line:col` plus the span
//! to underline), a message and an optional hint. Checks push diagnostics into a
//! [`Diagnostics`] accumulator and never stop at the first problem. Renderers turn the
//! same list into human text (with source snippets), JSON, GitHub annotations, SARIF 2.1.0
//! or JUnit XML.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

/// How bad a problem is. Errors make `validate` exit 1; warnings only with `--deny-warnings`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// A file whose text diagnostics can point into. `name` is the path as shown to the user.
#[derive(Debug, PartialEq, Eq)]
pub struct SourceFile {
    pub name: String,
    pub text: String,
}

impl SourceFile {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Arc<Self> {
        Arc::new(SourceFile {
            name: name.into(),
            text: text.into(),
        })
    }

    /// The text of 1-based line `line`, without its line ending.
    pub fn line_text(&self, line: usize) -> &str {
        self.text
            .lines()
            .nth(line.saturating_sub(1))
            .unwrap_or("")
            .trim_end_matches('\r')
    }
}

/// A position in a source file: 1-based line and 1-based column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

/// A located region of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub file: Arc<SourceFile>,
    pub start: Pos,
    pub end: Pos,
}

impl Span {
    pub fn new(file: Arc<SourceFile>, start: Pos, end: Pos) -> Self {
        Span { file, start, end }
    }

    /// The same span over a copy of the file whose spanned characters are `*`, so a
    /// rendering never shows what it marks (a secret given where a reference belongs).
    pub fn redacted(&self) -> Span {
        let mut out = String::with_capacity(self.file.text.len());
        for (i, line) in self.file.text.split_inclusive('\n').enumerate() {
            let n = i + 1;
            if n < self.start.line || n > self.end.line {
                out.push_str(line);
                continue;
            }
            for (j, c) in line.chars().enumerate() {
                let col = j + 1;
                let after_start = n > self.start.line || col >= self.start.column;
                let before_end = n < self.end.line || col < self.end.column;
                let hide = after_start && before_end && c != '\n' && c != '\r';
                out.push(if hide { '*' } else { c });
            }
        }
        Span::new(
            SourceFile::new(self.file.name.clone(), out),
            self.start,
            self.end,
        )
    }

    /// A span at the very start of the file (for problems of the whole file).
    pub fn file_start(file: Arc<SourceFile>) -> Self {
        let p = Pos { line: 1, column: 1 };
        Span {
            file,
            start: p,
            end: p,
        }
    }
}

/// One problem, with everything a user needs to act on it.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    pub code: &'static str,
    pub severity: Severity,
    pub message: String,
    /// Where the problem is. `None` only for problems not tied to a file.
    pub span: Option<Span>,
    /// Short text printed under the marked span.
    pub label: Option<String>,
    /// How to fix it ("did you mean `date_of_birth`?").
    pub help: Option<String>,
}

impl Diagnostic {
    /// A diagnostic with the severity registered for `code`.
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        let severity = codes::lookup(code)
            .map(|c| c.severity)
            .unwrap_or(Severity::Error);
        Diagnostic {
            code,
            severity,
            message: message.into(),
            span: None,
            label: None,
            help: None,
        }
    }
    pub fn at(mut self, span: Span) -> Self {
        self.span = Some(span);
        self
    }
    pub fn at_opt(mut self, span: Option<Span>) -> Self {
        if span.is_some() {
            self.span = span;
        }
        self
    }
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
    pub fn help_opt(mut self, help: Option<String>) -> Self {
        if help.is_some() {
            self.help = help;
        }
        self
    }
    pub fn severity(mut self, severity: Severity) -> Self {
        self.severity = severity;
        self
    }
    pub fn file_name(&self) -> &str {
        self.span
            .as_ref()
            .map(|s| s.file.name.as_str())
            .unwrap_or("")
    }
    pub fn line(&self) -> usize {
        self.span.as_ref().map(|s| s.start.line).unwrap_or(0)
    }
    pub fn column(&self) -> usize {
        self.span.as_ref().map(|s| s.start.column).unwrap_or(0)
    }
}

/// The accumulator every check writes into.
#[derive(Debug, Default)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn push(&mut self, d: Diagnostic) {
        self.items.push(d);
    }
    pub fn extend(&mut self, other: Diagnostics) {
        self.items.extend(other.items);
    }
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
    pub fn len(&self) -> usize {
        self.items.len()
    }
    pub fn errors(&self) -> usize {
        self.items
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count()
    }
    pub fn warnings(&self) -> usize {
        self.items
            .iter()
            .filter(|d| d.severity == Severity::Warning)
            .count()
    }
    pub fn has_errors(&self) -> bool {
        self.errors() > 0
    }
    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter()
    }
    /// Sorted by file, then position, then code: the order every renderer uses.
    pub fn into_sorted(mut self) -> Vec<Diagnostic> {
        self.items.sort_by(|a, b| {
            (a.file_name(), a.line(), a.column(), a.code).cmp(&(
                b.file_name(),
                b.line(),
                b.column(),
                b.code,
            ))
        });
        self.items.dedup_by(|a, b| {
            a.code == b.code
                && a.message == b.message
                && a.file_name() == b.file_name()
                && a.line() == b.line()
                && a.column() == b.column()
        });
        self.items
    }
}

/// A problem found by a check that sees typed values rather than the YAML: a code and
/// a message, located by a JSON pointer into the document (relative to the section that
/// was checked until [`Finding::under`] prefixes it). The loader of the document turns it
/// into a located [`Diagnostic`] (`manifest::source::Document::locate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub code: &'static str,
    /// Where: the first of these pointers that exists in the document wins; if none
    /// does (a default value), the nearest existing ancestor of the first.
    pub pointers: Vec<String>,
    pub message: String,
    pub label: Option<String>,
    pub help: Option<String>,
}

impl Finding {
    pub fn new(code: &'static str, pointer: impl Into<String>, message: impl Into<String>) -> Self {
        Finding {
            code,
            pointers: vec![pointer.into()],
            message: message.into(),
            label: None,
            help: None,
        }
    }
    /// Another place to point at when the first was not written (left at its default).
    pub fn or_at(mut self, pointer: impl Into<String>) -> Self {
        self.pointers.push(pointer.into());
        self
    }
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
    /// A finding at a dotted setting as messages name it (`deploy.storage.landing`,
    /// `linkage.comparisons[0].levels`), relative to the document's top.
    pub fn at_setting(code: &'static str, setting: &str, message: impl Into<String>) -> Self {
        let pointer: String = setting
            .replace('[', ".")
            .replace(']', "")
            .split('.')
            .filter(|s| !s.is_empty())
            .map(|s| format!("/{}", s.replace('~', "~0").replace('/', "~1")))
            .collect();
        Finding::new(code, pointer, message)
    }
    /// The finding with its pointers below `prefix` (e.g. `/linkage`).
    pub fn under(mut self, prefix: &str) -> Self {
        for p in &mut self.pointers {
            *p = format!("{prefix}{p}");
        }
        self
    }
}

/// A check that still reports plain text: `ONB0909` at the section it came from (the
/// caller's [`Finding::under`]); give it a code and a pointer to locate it precisely.
impl From<String> for Finding {
    fn from(message: String) -> Self {
        Finding::new("ONB0909", "", message)
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}] {}", self.code, self.message)
    }
}

/// Suggest the closest candidate to `name` ("did you mean …?"), if one is close enough.
pub fn did_you_mean<'a, I>(name: &str, candidates: I) -> Option<String>
where
    I: IntoIterator<Item = &'a str>,
{
    let lower = name.to_ascii_lowercase();
    let mut best: Option<(f64, &str)> = None;
    for c in candidates {
        let score = strsim::jaro_winkler(&lower, &c.to_ascii_lowercase());
        if score >= 0.8 && best.is_none_or(|(b, _)| score > b) {
            best = Some((score, c));
        }
    }
    best.map(|(_, c)| format!("did you mean `{c}`?"))
}

/// The registry of stable diagnostic codes. Codes are never reused or renumbered;
/// `docs/diagnostics.md` is generated from this table (`onboard docs`).
pub mod codes {
    use super::Severity;

    /// One registered code with its documentation.
    #[derive(Debug, Clone, Copy)]
    pub struct Code {
        pub code: &'static str,
        pub severity: Severity,
        pub title: &'static str,
        pub explanation: &'static str,
    }

    macro_rules! registry {
        ($( $code:literal $sev:ident $title:literal => $expl:literal ;)*) => {
            pub const ALL: &[Code] = &[ $( Code { code: $code, severity: Severity::$sev, title: $title, explanation: $expl } ),* ];
        };
    }

    registry! {
        "ONB0001" Error "file cannot be read" => "The manifest (or ICS) file could not be read (missing, unreadable or not UTF-8).";
        "ONB0002" Error "file too large" => "Manifests larger than 1 MiB are refused: a provider manifest is a few hundred lines.";
        "ONB0003" Error "YAML syntax error" => "The file is not valid YAML. The position is where the parser gave up.";
        "ONB0004" Error "YAML anchors, aliases and merge keys are not allowed" => "Aliases make manifests hard to read and allow alias bombs (billion laughs). Use a provider template (`uses:`) to share structure.";
        "ONB0005" Error "duplicate key" => "A key appears twice in one mapping, e.g. a canonical field mapped twice. Only one can win, so both are refused.";
        "ONB0006" Error "not exactly one YAML document" => "A manifest file (and an ICS file) holds exactly one YAML document, a mapping.";
        "ONB0101" Error "unknown key" => "The key is not part of the manifest language at this place. Check spelling; the hint lists the closest allowed key.";
        "ONB0102" Error "wrong type" => "The value has the wrong YAML type (e.g. a list where a mapping is expected).";
        "ONB0103" Error "missing required key" => "A key the manifest language requires here is absent.";
        "ONB0104" Error "invalid value" => "The value is of the right type but not allowed (not in the enumeration, wrong pattern, out of range).";
        "ONB0105" Error "unsupported manifest_version" => "This version of onboard reads manifest_version 1.";
        "ONB0201" Error "unknown canonical entity" => "`maps_to` must name a canonical entity from schemas/canonical/.";
        "ONB0202" Error "unknown canonical field" => "The field is not part of the canonical entity the source maps to (or of person_identity, for the `identity:` block).";
        "ONB0203" Error "required canonical field not mapped" => "The canonical entity requires this field and the source does not map it.";
        "ONB0204" Error "canonical field mapped twice" => "The same canonical field is given both in `fields:` and in `identity:` of a source that maps to person_identity.";
        "ONB0205" Error "type conflict between source and canonical field" => "The mapping produces a value whose type cannot become the canonical field's type (e.g. text into a date without `parse_date`).";
        "ONB0206" Error "value-map target outside the canonical value set" => "A `map:` or `map_file:` produces a code that the canonical field's value set does not contain.";
        "ONB0207" Error "value-map file problem" => "The `map_file:` is missing, unreadable, or not a two-column CSV (source,target) with a header.";
        "ONB0208" Error "mapping needs exactly one of from, const, expr" => "Each canonical field takes its value from exactly one of a source column (`from`), a constant (`const`) or a SQL expression (`expr`).";
        "ONB0209" Error "unknown transform" => "The named transform does not exist. `onboard docs` lists the transforms.";
        "ONB0210" Error "column not declared in source" => "The column is not among the source's declared `columns:`.";
        "ONB0211" Error "bad date format" => "A `parse_date` / `parse_timestamp` format is not a valid strftime format, or carries no date.";
        "ONB0212" Warning "declared column not used" => "A declared source column is neither mapped nor used in an expression. It will be read and ignored.";
        "ONB0213" Error "derived field cannot be mapped" => "The field is computed by onboard (keys such as person_key, lineage columns); providers do not map it.";
        "ONB0214" Warning "source has no identity block" => "An analytics source without `identity:` produces rows that cannot be linked to a person.";
        "ONB0215" Error "rule names an undeclared source column" => "A quality rule's `column:` must name one of the source's declared `columns:` (it checks the column as read, before mapping).";
        "ONB0216" Error "rule cannot check a source column" => "Source columns are text as read; rules that need a typed value (in_range, not_in_future, date_order, parseable) check a mapped canonical field (`field:`) instead.";
        "ONB0217" Error "empty value map" => "A `map:` or `map_file:` has no entries, so every value would become missing (or the `map_default:`). List the codes, or remove the map.";
        "ONB0301" Error "SQL expression does not parse" => "The SQL expression is not valid SQL (DataFusion's parser rejected it).";
        "ONB0302" Error "SQL expression names an unknown column" => "Field expressions see the declared source columns; quality expressions see the mapped canonical fields.";
        "ONB0303" Error "SQL expression calls an unknown function" => "The function is neither a DataFusion built-in nor an onboard UDF.";
        "ONB0304" Error "SQL expression has the wrong type" => "The expression does not type-check, or a quality expression is not boolean.";
        "ONB0401" Error "unknown quality rule" => "`rule:` must name a built-in rule (see docs/rules.md); use `expr:` for a custom SQL rule.";
        "ONB0402" Error "bad rule parameters" => "The rule is missing a parameter it needs, or got one it does not take, or a parameter value is invalid.";
        "ONB0403" Error "rule field not mapped" => "A quality rule checks a canonical field that this source does not map.";
        "ONB0404" Error "duplicate rule id" => "Two quality rules of one source have the same id; ids name rules in quarantine records and reports.";
        "ONB0405" Error "rule needs exactly one of rule, expr" => "A quality rule is either a built-in (`rule:`) or a custom SQL rule (`expr:` with `id:`).";
        "ONB0501" Error "unknown provider template" => "`uses:` must name a template in templates/providers/ (without extension).";
        "ONB0502" Error "template parameter missing" => "The template uses a parameter that `params:` does not give (templates render with strict undefined).";
        "ONB0503" Error "template does not render" => "The template has a syntax error or failed while rendering.";
        "ONB0504" Warning "template parameter unused" => "A parameter in `params:` is not used by the template.";
        "ONB0601" Error "duplicate provider id" => "Provider ids are unique across all manifests of an ICS.";
        "ONB0701" Error "path escapes the repository" => "Paths must be relative and stay inside the repository (map files) or the landing zone (source paths): no absolute paths, no `..` above the root.";
        "ONB0702" Error "literal secret in manifest" => "Manifests are committed to git; secrets never go in them. Keys are read from the environment or a key file at run time.";
        "ONB0801" Error "declared column missing from data" => "With --data/--sample: the extract's header lacks a column the manifest declares.";
        "ONB0802" Warning "data has undeclared columns" => "With --data/--sample: the extract has columns the manifest does not declare; they are ignored.";
        "ONB0803" Warning "no data file matches source path" => "With --data: no file under the data directory matches the source's path glob.";
        "ONB0804" Error "data file cannot be read" => "With --data/--sample: the extract's header could not be read.";
        "ONB0901" Error "unknown key in the ICS file" => "The key is not part of the ICS file at this place (top level or a section such as `linkage:`). Check spelling; the hint names the closest allowed key. `onboard schema --ics` prints the JSON Schema.";
        "ONB0902" Error "wrong type in the ICS file" => "The value has the wrong YAML type (e.g. a string where a number or a list is expected).";
        "ONB0903" Error "missing required key in the ICS file" => "A key the ICS file requires is absent (`ics:` with `id` and `name`, `providers:`, `landing:`).";
        "ONB0904" Error "invalid value in the ICS file" => "The value is of the right type but not allowed (not in the enumeration, out of range).";
        "ONB0905" Error "provider path not found" => "An entry of `providers:` names a file or directory that does not exist (relative paths are relative to the ICS file).";
        "ONB0906" Warning "provider directory holds no manifests" => "A directory named in `providers:` contains no `*.yaml` / `*.yml` manifest, so it onboards nothing.";
        "ONB0907" Error "bad reference date" => "`reference_date` must be a date written YYYY-MM-DD.";
        "ONB0908" Error "bad memory limit" => "`engine.memory_limit` must be a size such as `2GiB`, `512MiB`, `1GB` or a number of bytes.";
        "ONB0909" Error "settings of an ICS section do not fit together" => "A section's settings contradict each other or name something unusable; the message names the setting. Reported at the section when its check gives no more precise place.";
        "ONB0910" Error "review threshold above link threshold" => "`linkage.review_threshold` must not exceed `linkage.link_threshold`: pairs between the two go to clerical review, pairs above the link threshold are linked.";
        "ONB0911" Error "bad blocking rules" => "`linkage.blocking` needs at least one rule, and each rule names at least one attribute (the same for `linkage.training.em_blocking`).";
        "ONB0912" Error "bad number of comparisons" => "`linkage.comparisons` needs 1 to 8 comparisons, each field at most once, each with 1 to 6 levels.";
        "ONB0913" Error "level does not apply to the field" => "A comparison level applies to some fields only: `jaro_winkler` (between 0 and 1) and `soundex` to names, `nickname` to given names, `names_swapped` to given and family names, `day_month_swap`, `same_year_month` and `same_year` to dates of birth, `sector` and `district` to postcodes, `one_edit` to NHS numbers; `history` applies to postcode only.";
        "ONB0920" Error "risk settings do not fit together" => "The `risk:` section's as-of dates, outcome horizon or bands contradict each other: training outcome windows must end by the validation as-of date, the validation window by the reference date; bands need increasing `top_percent`, only the last without one.";
        "ONB0921" Error "bad risk feature" => "A declared risk feature names an unknown code list (the message lists the known ones), repeats a name, uses a reserved name, or has an empty window (docs/risk.md).";
        "ONB0940" Error "population settings unusable" => "A `population:` setting cannot be used: a file it names cannot be read or parsed, or the as-of date is not YYYY-MM-DD (docs/population.md).";
        "ONB0941" Error "unknown measure or breakdown" => "`population.measures` and `population.breakdowns` must name known measures and breakdowns; the message lists them with a did-you-mean (docs/population.md).";
        "ONB0942" Error "bad segment or flag rule" => "A segment or flag rule is not a valid SQL condition over the person features: it names an unknown feature (did-you-mean given), does not parse, or is not boolean.";
        "ONB0943" Error "bad segmentation" => "A segmentation or flag is malformed: names must be lower case with digits and `_` and unique, every segment needs a `when` rule, and only the last segment of a priority segmentation may say `otherwise: true`.";
        "ONB0944" Error "tariff incomplete or malformed" => "The tariff file must price every activity type of every setting (docs/population.md lists them) with a non-negative unit cost.";
        "ONB0945" Error "segments overlap or leave gaps" => "At run time: in an exclusive segmentation a person satisfies two rules, or a person satisfies no rule and there is no `otherwise` segment.";
        "ONB0946" Error "bad ACSC code list" => "The ACSC code list must have `condition,code` rows of 3- or 4-character ICD-10 prefixes.";
        "ONB0947" Error "bad disclosure policy" => "`population.disclosure.round_to` must be at least 1.";
        "ONB0950" Error "serve user declared twice" => "Each `serve.users` entry needs its own `id`.";
        "ONB0951" Error "clinician without practices" => "A `clinician` sees the patients registered at the practices listed in `practices` (ODS codes); with none they would see nobody.";
        "ONB0952" Warning "practices on a role that is not scoped" => "`practices` scopes clinicians only; commissioners see aggregates of the whole population, analysts and admins all pseudonymised rows.";
        "ONB0953" Error "bad password hash" => "`password_hash` must be an argon2 hash in PHC form (`$argon2id$v=19$…`), as `onboard serve --hash-password` prints it. Never put a password in the ICS file.";
        "ONB0954" Error "user who cannot sign in" => "A user needs a `password_hash` (local account) unless `serve.identity_provider` is declared.";
        "ONB0955" Error "bad identity provider settings" => "`serve.identity_provider.secret_env` must be an environment variable name (the secret itself never goes in the file) and `header` a valid HTTP header name.";
        "ONB0956" Error "bad listen address" => "`serve.listen` must be `host:port`, e.g. `127.0.0.1:8080`.";
        "ONB0957" Error "bad session length" => "`serve.session_minutes` must be between 1 and 1440.";
        "ONB0958" Error "no serve users" => "`serve.users` is empty: nobody could sign in to the dashboard.";
        "ONB0959" Error "bad user id" => "User ids are letters, digits, `.`, `_`, `-` and `@` (they travel in the identity header and the audit log).";
        "ONB0930" Error "deliveries without a date" => "`operations.deliveries` names where each month's delivery lands and needs `{date}` (the extract date, YYYY-MM-DD), e.g. `deliveries/{date}`.";
        "ONB0931" Error "bad referral threshold" => "`operations.referral` declares one threshold: `top_percent` in (0, 100] or `bands` naming bands of `risk.bands`, not both (docs/operations.md).";
        "ONB0932" Error "bad retraining rule" => "`operations.retrain`: `every_months` is at least 1, `recall_floor` a share in (0, 1], `k_percent` one of the monitored k (0.5, 1, 2, 5).";
        "ONB0933" Error "bad promotion rule" => "`operations.promotion.max_auroc_drop` is an AUROC difference between 0 and 1.";
        "ONB0934" Error "bad drift thresholds" => "`operations.drift`: `warn` above 0 and at most `alert`; `bins` between 2 and 100.";
    }

    pub fn lookup(code: &str) -> Option<&'static Code> {
        ALL.iter().find(|c| c.code == code)
    }
}

/// Output formats of diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    #[default]
    Human,
    Json,
    Github,
    Sarif,
    Junit,
}

/// What was checked, for the summary line and the JUnit/SARIF envelopes.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Display names of the files checked.
    pub files: Vec<String>,
}

/// Render diagnostics in `format`.
pub fn render(format: Format, diags: &[Diagnostic], summary: &Summary) -> String {
    match format {
        Format::Human => render_human(diags, summary),
        Format::Json => render_json(diags),
        Format::Github => render_github(diags),
        Format::Sarif => render_sarif(diags),
        Format::Junit => render_junit(diags, summary),
    }
}

/// Human output: rustc-style, with the source line and the span underlined.
pub fn render_human(diags: &[Diagnostic], summary: &Summary) -> String {
    let mut out = String::new();
    for d in diags {
        render_one_human(&mut out, d);
        out.push('\n');
    }
    let errors = diags
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    let warnings = diags.len() - errors;
    let mut files: Vec<&str> = diags.iter().map(|d| d.file_name()).collect();
    files.sort();
    files.dedup();
    let n = summary.files.len();
    let checked = format!("{n} file{} checked", if n == 1 { "" } else { "s" });
    if diags.is_empty() {
        let _ = writeln!(out, "ok: no problems ({checked})");
    } else {
        let _ = writeln!(
            out,
            "{} error{}, {} warning{} in {} file{} ({checked})",
            errors,
            plural(errors),
            warnings,
            plural(warnings),
            files.len(),
            plural(files.len()),
        );
    }
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn render_one_human(out: &mut String, d: &Diagnostic) {
    let _ = writeln!(out, "{}[{}]: {}", d.severity.as_str(), d.code, d.message);
    if let Some(span) = &d.span {
        let line_no = span.start.line;
        let gutter = line_no.to_string().len().max(2);
        let pad = " ".repeat(gutter);
        let _ = writeln!(
            out,
            "{pad}--> {}:{}:{}",
            span.file.name, span.start.line, span.start.column
        );
        let text = span.file.line_text(line_no);
        if !text.is_empty() || line_no > 0 {
            let _ = writeln!(out, "{pad} |");
            let _ = writeln!(out, "{line_no:>gutter$} | {text}");
            let start_col = span.start.column.max(1);
            let line_chars = text.chars().count();
            let end_col = if span.end.line == span.start.line && span.end.column > start_col {
                span.end.column
            } else {
                // Multi-line or empty span: underline to the end of the line (at least one char).
                (line_chars + 1).max(start_col + 1)
            };
            let width = end_col - start_col;
            let lead: String = text
                .chars()
                .take(start_col - 1)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            let _ = write!(out, "{pad} | {lead}{}", "^".repeat(width.max(1)));
            if let Some(label) = &d.label {
                let _ = write!(out, " {label}");
            }
            out.push('\n');
        }
        if d.help.is_some() {
            let _ = writeln!(out, "{pad} |");
        }
        if let Some(help) = &d.help {
            let _ = writeln!(out, "{pad} = help: {help}");
        }
    } else if let Some(help) = &d.help {
        let _ = writeln!(out, "   = help: {help}");
    }
}

/// `--format json`: an array of objects; see docs/validate-output.md.
pub fn render_json(diags: &[Diagnostic]) -> String {
    let arr: Vec<serde_json::Value> = diags.iter().map(json_object).collect();
    let mut s = serde_json::to_string_pretty(&arr).unwrap_or_else(|_| "[]".into());
    s.push('\n');
    s
}

fn json_object(d: &Diagnostic) -> serde_json::Value {
    let (end_line, end_column) = d
        .span
        .as_ref()
        .map(|s| (s.end.line, s.end.column))
        .unwrap_or((0, 0));
    serde_json::json!({
        "code": d.code,
        "severity": d.severity.as_str(),
        "file": d.file_name(),
        "line": d.line(),
        "column": d.column(),
        "end_line": end_line,
        "end_column": end_column,
        "message": d.message,
        "label": d.label,
        "help": d.help,
        "title": codes::lookup(d.code).map(|c| c.title),
    })
}

/// `--format github`: workflow commands that GitHub Actions turns into annotations.
pub fn render_github(diags: &[Diagnostic]) -> String {
    let mut out = String::new();
    for d in diags {
        let level = match d.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let mut msg = d.message.clone();
        if let Some(h) = &d.help {
            msg.push_str(" (help: ");
            msg.push_str(h);
            msg.push(')');
        }
        let _ = writeln!(
            out,
            "::{level} file={},line={},col={},title={}::{}",
            gh_escape_property(d.file_name()),
            d.line(),
            d.column(),
            gh_escape_property(d.code),
            gh_escape_data(&format!("[{}] {}", d.code, msg))
        );
    }
    out
}

fn gh_escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn gh_escape_property(s: &str) -> String {
    gh_escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// `--format sarif`: SARIF 2.1.0, one run, rules from the code registry.
pub fn render_sarif(diags: &[Diagnostic]) -> String {
    let mut used: Vec<&str> = diags.iter().map(|d| d.code).collect();
    used.sort();
    used.dedup();
    let rules: Vec<serde_json::Value> = used
        .iter()
        .map(|code| {
            let c = codes::lookup(code);
            serde_json::json!({
                "id": code,
                "name": c.map(|c| c.title).unwrap_or(code),
                "shortDescription": { "text": c.map(|c| c.title).unwrap_or(code) },
                "fullDescription": { "text": c.map(|c| c.explanation).unwrap_or("") },
                "defaultConfiguration": { "level": c.map(|c| sarif_level(c.severity)).unwrap_or("error") },
                "helpUri": format!("docs/diagnostics.md#{}", code.to_ascii_lowercase()),
            })
        })
        .collect();
    let results: Vec<serde_json::Value> = diags
        .iter()
        .map(|d| {
            let mut text = d.message.clone();
            if let Some(h) = &d.help {
                text.push_str("\nhelp: ");
                text.push_str(h);
            }
            let mut result = serde_json::json!({
                "ruleId": d.code,
                "ruleIndex": used.iter().position(|c| *c == d.code).unwrap_or(0),
                "level": sarif_level(d.severity),
                "message": { "text": text },
            });
            if let Some(span) = &d.span {
                let end_col =
                    if span.end.line == span.start.line && span.end.column > span.start.column {
                        span.end.column
                    } else {
                        span.start.column + 1
                    };
                result["locations"] = serde_json::json!([{
                    "physicalLocation": {
                        "artifactLocation": { "uri": span.file.name.replace('\\', "/") },
                        "region": {
                            "startLine": span.start.line,
                            "startColumn": span.start.column,
                            "endLine": span.start.line,
                            "endColumn": end_col,
                        }
                    }
                }]);
            }
            result
        })
        .collect();
    let doc = serde_json::json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "onboard",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://github.com/onboard-ics/onboard",
                "rules": rules,
            }},
            "columnKind": "unicodeCodePoints",
            "results": results,
        }]
    });
    let mut s = serde_json::to_string_pretty(&doc).unwrap_or_default();
    s.push('\n');
    s
}

fn sarif_level(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
    }
}

/// `--format junit`: one test case per checked file; each error or warning is a failure.
pub fn render_junit(diags: &[Diagnostic], summary: &Summary) -> String {
    let mut files: Vec<String> = summary.files.clone();
    for d in diags {
        if !d.file_name().is_empty() && !files.iter().any(|f| f == d.file_name()) {
            files.push(d.file_name().to_string());
        }
    }
    let failures = files
        .iter()
        .filter(|f| diags.iter().any(|d| d.file_name() == f.as_str()))
        .count();
    let mut out = String::new();
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"onboard validate\" tests=\"{}\" failures=\"{}\" errors=\"0\">",
        files.len(),
        failures
    );
    let _ = writeln!(
        out,
        "  <testsuite name=\"onboard validate\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"0\">",
        files.len(),
        failures
    );
    for f in &files {
        let mine: Vec<&Diagnostic> = diags.iter().filter(|d| d.file_name() == f).collect();
        let _ = write!(
            out,
            "    <testcase classname=\"onboard.validate\" name=\"{}\" file=\"{}\"",
            xml_escape(f),
            xml_escape(f)
        );
        if mine.is_empty() {
            out.push_str("/>\n");
            continue;
        }
        out.push_str(">\n");
        for d in mine {
            let mut body = String::new();
            render_one_human(&mut body, d);
            let _ = writeln!(
                out,
                "      <failure type=\"{}\" message=\"{}:{}: {} [{}] {}\">{}</failure>",
                d.severity.as_str(),
                d.line(),
                d.column(),
                d.severity.as_str(),
                d.code,
                xml_escape(&d.message),
                xml_escape(&body)
            );
        }
        out.push_str("    </testcase>\n");
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

fn xml_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' && c != '\r' => {}
            c => o.push(c),
        }
    }
    o
}

/// Show a path relative to the current directory when it is inside it, with `/` separators.
pub fn display_path(path: &Path) -> String {
    let cwd = std::env::current_dir().ok();
    let p = match &cwd {
        Some(c) => path.strip_prefix(c).unwrap_or(path),
        None => path,
    };
    let s = p.to_string_lossy().replace('\\', "/");
    s.strip_prefix("./").map(str::to_string).unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::Finding;

    #[test]
    fn findings_locate_by_pointer() {
        let f = Finding::at_setting("ONB0909", "deploy.storage.landing", "bad");
        assert_eq!(f.pointers, ["/deploy/storage/landing"]);
        let f = Finding::at_setting("ONB0909", "linkage.comparisons[2].levels", "bad");
        assert_eq!(f.pointers, ["/linkage/comparisons/2/levels"]);
        let f = Finding::new("ONB0910", "/review_threshold", "x")
            .or_at("/link_threshold")
            .under("/linkage");
        assert_eq!(
            f.pointers,
            ["/linkage/review_threshold", "/linkage/link_threshold"]
        );
        let f = Finding::from("plain".to_string()).under("/linkage");
        assert_eq!((f.code, f.pointers[0].as_str()), ("ONB0909", "/linkage"));
    }
}
