//! Structural check of a rendered `databricks.yml`: the keys and value types of the
//! parts of a Databricks Asset Bundle that onboard writes, as Databricks documents them
//! (bundle settings reference, Jobs API 2.1 job settings). Written from the
//! documentation, not from Databricks' schema file. Unknown keys at the levels we own
//! are errors, so a template typo cannot slip through.

use std::collections::BTreeSet;

use serde_json::Value;

const TOP: &[&str] = &[
    "bundle",
    "variables",
    "targets",
    "resources",
    "include",
    "workspace",
    "artifacts",
    "sync",
    "permissions",
    "run_as",
    "presets",
    "experimental",
    "scripts",
];
const TARGET: &[&str] = &[
    "mode",
    "default",
    "workspace",
    "variables",
    "resources",
    "run_as",
    "presets",
    "permissions",
    "git",
];
const JOB: &[&str] = &[
    "name",
    "description",
    "tasks",
    "job_clusters",
    "schedule",
    "max_concurrent_runs",
    "tags",
    "email_notifications",
    "timeout_seconds",
    "parameters",
    "permissions",
    "queue",
];
const TASK: &[&str] = &[
    "task_key",
    "description",
    "depends_on",
    "job_cluster_key",
    "existing_cluster_id",
    "spark_python_task",
    "notebook_task",
    "python_wheel_task",
    "spark_jar_task",
    "sql_task",
    "run_job_task",
    "libraries",
    "timeout_seconds",
    "max_retries",
];
const TASK_KINDS: &[&str] = &[
    "spark_python_task",
    "notebook_task",
    "python_wheel_task",
    "spark_jar_task",
    "sql_task",
    "run_job_task",
];
const CLUSTER: &[&str] = &[
    "spark_version",
    "node_type_id",
    "driver_node_type_id",
    "num_workers",
    "autoscale",
    "spark_conf",
    "spark_env_vars",
    "data_security_mode",
    "custom_tags",
];

/// Every structural problem of a parsed `databricks.yml` (empty when it conforms).
pub fn databricks_yml(doc: &Value) -> Vec<String> {
    let mut c = Checker::default();
    let Some(top) = c.object(doc, "") else {
        return c.problems;
    };
    c.keys(doc, "", TOP);
    match top.get("bundle") {
        Some(b) => {
            c.keys(b, "bundle", &["name", "databricks_cli_version", "git"]);
            c.string(b.get("name"), "bundle.name", true);
        }
        None => c.problem("", "`bundle` is required"),
    }
    if let Some(vars) = top.get("variables").and_then(|v| c.object(v, "variables")) {
        for (k, v) in vars {
            let at = format!("variables.{k}");
            c.keys(v, &at, &["description", "default", "type", "lookup"]);
            c.string(v.get("description"), &format!("{at}.description"), false);
        }
    }
    if let Some(targets) = top.get("targets").and_then(|v| c.object(v, "targets")) {
        for (k, t) in targets {
            let at = format!("targets.{k}");
            c.keys(t, &at, TARGET);
            if let Some(m) = t.get("mode") {
                c.one_of(m, &format!("{at}.mode"), &["development", "production"]);
            }
            c.boolean(t.get("default"), &format!("{at}.default"));
            if let Some(w) = t.get("workspace") {
                c.keys(
                    w,
                    &format!("{at}.workspace"),
                    &["host", "root_path", "profile"],
                );
                if let Some(h) = w.get("host").and_then(Value::as_str)
                    && !h.starts_with("https://")
                {
                    c.problem(&format!("{at}.workspace.host"), "must be an https:// URL");
                }
            }
        }
    }
    let jobs = top
        .get("resources")
        .and_then(|r| c.object(r, "resources"))
        .and_then(|r| r.get("jobs"))
        .and_then(|j| c.object(j, "resources.jobs"));
    match jobs {
        Some(jobs) if !jobs.is_empty() => {
            for (k, j) in jobs {
                c.job(j, &format!("resources.jobs.{k}"));
            }
        }
        _ => c.problem("resources.jobs", "at least one job is required"),
    }
    c.problems
}

#[derive(Default)]
struct Checker {
    problems: Vec<String>,
}

impl Checker {
    fn problem(&mut self, at: &str, msg: &str) {
        let at = if at.is_empty() { "(top level)" } else { at };
        self.problems.push(format!("{at}: {msg}"));
    }
    fn object<'a>(&mut self, v: &'a Value, at: &str) -> Option<&'a serde_json::Map<String, Value>> {
        let o = v.as_object();
        if o.is_none() {
            self.problem(at, "must be a mapping");
        }
        o
    }
    fn keys(&mut self, v: &Value, at: &str, allowed: &[&str]) {
        if let Some(o) = v.as_object() {
            for k in o.keys() {
                if !allowed.contains(&k.as_str()) {
                    self.problem(at, &format!("unknown key `{k}`"));
                }
            }
        }
    }
    fn string(&mut self, v: Option<&Value>, at: &str, required: bool) -> Option<String> {
        match v {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(_) => {
                self.problem(at, "must be a non-empty string");
                None
            }
            None => {
                if required {
                    self.problem(at, "is required");
                }
                None
            }
        }
    }
    fn boolean(&mut self, v: Option<&Value>, at: &str) {
        if v.is_some_and(|v| !v.is_boolean()) {
            self.problem(at, "must be true or false");
        }
    }
    fn integer(&mut self, v: Option<&Value>, at: &str, min: i64) {
        match v {
            Some(v) if v.as_i64().is_some_and(|n| n >= min) => {}
            Some(_) => self.problem(at, &format!("must be an integer ≥ {min}")),
            None => {}
        }
    }
    fn one_of(&mut self, v: &Value, at: &str, allowed: &[&str]) {
        if !v.as_str().is_some_and(|s| allowed.contains(&s)) {
            self.problem(at, &format!("must be one of {}", allowed.join(", ")));
        }
    }
    fn string_map(&mut self, v: Option<&Value>, at: &str) {
        if let Some(v) = v
            && let Some(o) = self.object(v, at)
            && o.values().any(|x| !x.is_string())
        {
            self.problem(at, "values must be strings");
        }
    }

    fn job(&mut self, j: &Value, at: &str) {
        if self.object(j, at).is_none() {
            return;
        }
        self.keys(j, at, JOB);
        self.string(j.get("name"), &format!("{at}.name"), true);
        self.string(j.get("description"), &format!("{at}.description"), false);
        self.integer(
            j.get("max_concurrent_runs"),
            &format!("{at}.max_concurrent_runs"),
            1,
        );
        self.string_map(j.get("tags"), &format!("{at}.tags"));
        if let Some(s) = j.get("schedule") {
            self.schedule(s, &format!("{at}.schedule"));
        }
        let clusters = self.job_clusters(j.get("job_clusters"), &format!("{at}.job_clusters"));
        match j.get("tasks").and_then(Value::as_array) {
            Some(tasks) if !tasks.is_empty() => {
                self.tasks(tasks, &clusters, &format!("{at}.tasks"))
            }
            _ => self.problem(&format!("{at}.tasks"), "must be a non-empty list"),
        }
    }

    fn schedule(&mut self, s: &Value, at: &str) {
        self.keys(
            s,
            at,
            &["quartz_cron_expression", "timezone_id", "pause_status"],
        );
        if let Some(q) = self.string(
            s.get("quartz_cron_expression"),
            &format!("{at}.quartz_cron_expression"),
            true,
        ) {
            let n = q.split_whitespace().count();
            if !(6..=7).contains(&n) {
                self.problem(
                    &format!("{at}.quartz_cron_expression"),
                    "a Quartz expression has 6 or 7 fields",
                );
            }
        }
        self.string(s.get("timezone_id"), &format!("{at}.timezone_id"), true);
        if let Some(p) = s.get("pause_status") {
            self.one_of(p, &format!("{at}.pause_status"), &["PAUSED", "UNPAUSED"]);
        }
    }

    fn job_clusters(&mut self, v: Option<&Value>, at: &str) -> BTreeSet<String> {
        let mut keys = BTreeSet::new();
        let Some(v) = v else { return keys };
        let Some(list) = v.as_array() else {
            self.problem(at, "must be a list");
            return keys;
        };
        for (i, jc) in list.iter().enumerate() {
            let at = format!("{at}[{i}]");
            self.keys(jc, &at, &["job_cluster_key", "new_cluster"]);
            if let Some(k) = self.string(
                jc.get("job_cluster_key"),
                &format!("{at}.job_cluster_key"),
                true,
            ) {
                keys.insert(k);
            }
            let Some(nc) = jc.get("new_cluster") else {
                self.problem(&at, "`new_cluster` is required");
                continue;
            };
            let at = format!("{at}.new_cluster");
            self.keys(nc, &at, CLUSTER);
            self.string(
                nc.get("spark_version"),
                &format!("{at}.spark_version"),
                true,
            );
            self.string(nc.get("node_type_id"), &format!("{at}.node_type_id"), true);
            if nc.get("num_workers").is_none() && nc.get("autoscale").is_none() {
                self.problem(&at, "`num_workers` or `autoscale` is required");
            }
            self.integer(nc.get("num_workers"), &format!("{at}.num_workers"), 0);
            self.string_map(nc.get("spark_conf"), &format!("{at}.spark_conf"));
            self.string_map(nc.get("spark_env_vars"), &format!("{at}.spark_env_vars"));
        }
        keys
    }

    fn tasks(&mut self, tasks: &[Value], clusters: &BTreeSet<String>, at: &str) {
        let mut seen = BTreeSet::new();
        for (i, t) in tasks.iter().enumerate() {
            let at = format!("{at}[{i}]");
            self.keys(t, &at, TASK);
            let key = self.string(t.get("task_key"), &format!("{at}.task_key"), true);
            if let Some(k) = &key {
                if !k
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                    || k.len() > 100
                {
                    self.problem(
                        &format!("{at}.task_key"),
                        "only letters, digits, `_` and `-`, at most 100",
                    );
                }
                if !seen.insert(k.clone()) {
                    self.problem(&format!("{at}.task_key"), &format!("`{k}` is used twice"));
                }
            }
            let kinds: Vec<&&str> = TASK_KINDS.iter().filter(|k| t.get(**k).is_some()).collect();
            if kinds.len() != 1 {
                self.problem(
                    &at,
                    "exactly one task type (spark_python_task, notebook_task, …) is required",
                );
            }
            if let Some(p) = t.get("spark_python_task") {
                let at = format!("{at}.spark_python_task");
                self.keys(p, &at, &["python_file", "parameters", "source"]);
                self.string(p.get("python_file"), &format!("{at}.python_file"), true);
                if let Some(params) = p.get("parameters")
                    && !params
                        .as_array()
                        .is_some_and(|a| a.iter().all(Value::is_string))
                {
                    self.problem(&format!("{at}.parameters"), "must be a list of strings");
                }
            }
            if let Some(k) = t.get("job_cluster_key").and_then(Value::as_str)
                && !clusters.contains(k)
            {
                self.problem(
                    &format!("{at}.job_cluster_key"),
                    &format!("`{k}` is not in job_clusters"),
                );
            }
            // Dependencies must name tasks listed earlier: the graph cannot have a cycle.
            if let Some(deps) = t.get("depends_on") {
                match deps.as_array() {
                    Some(deps) => {
                        for d in deps {
                            self.keys(d, &format!("{at}.depends_on"), &["task_key", "outcome"]);
                            match d.get("task_key").and_then(Value::as_str) {
                                Some(k) if seen.contains(k) && Some(k) != key.as_deref() => {}
                                Some(k) => self.problem(
                                    &format!("{at}.depends_on"),
                                    &format!("`{k}` is not an earlier task"),
                                ),
                                None => self.problem(
                                    &format!("{at}.depends_on"),
                                    "each entry needs `task_key`",
                                ),
                            }
                        }
                    }
                    None => self.problem(&format!("{at}.depends_on"), "must be a list"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn good() -> Value {
        json!({
            "bundle": {"name": "b"},
            "resources": {"jobs": {"j": {
                "name": "j",
                "schedule": {"quartz_cron_expression": "0 30 2 * * ?", "timezone_id": "Europe/London"},
                "job_clusters": [{"job_cluster_key": "c", "new_cluster": {"spark_version": "15.4.x-scala2.12", "node_type_id": "n", "num_workers": 2}}],
                "tasks": [
                    {"task_key": "a", "job_cluster_key": "c", "spark_python_task": {"python_file": "p.py", "parameters": ["x"]}},
                    {"task_key": "b", "job_cluster_key": "c", "depends_on": [{"task_key": "a"}], "spark_python_task": {"python_file": "p.py"}}
                ]
            }}}
        })
    }

    #[test]
    fn accepts_a_conforming_bundle() {
        assert_eq!(databricks_yml(&good()), Vec::<String>::new());
    }

    #[test]
    fn finds_structural_faults() {
        let mut v = good();
        let job = &mut v["resources"]["jobs"]["j"];
        job["schedule"]["quartz_cron_expression"] = json!("30 2 * * *");
        job["tasks"][1]["depends_on"] = json!([{"task_key": "zz"}]);
        job["tasks"][0]["job_cluster_key"] = json!("nope");
        job["job_clusters"][0]["new_cluster"]["num_workers"] = json!("two");
        job["tsks"] = json!([]);
        v["bundle"] = json!({});
        let p = databricks_yml(&v).join("\n");
        for want in [
            "6 or 7 fields",
            "`zz` is not an earlier task",
            "`nope` is not in job_clusters",
            "num_workers: must be an integer",
            "unknown key `tsks`",
            "bundle.name: is required",
        ] {
            assert!(p.contains(want), "missing {want} in\n{p}");
        }
    }
}
