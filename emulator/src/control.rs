//! What tests steer at run time: latency, throttling, faults, mutations of stored
//! definitions, and the request counters they read back. Not persisted.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// ARM's operation classes for throttling: by HTTP method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Reads,
    Writes,
    Deletes,
}

impl Op {
    pub fn of_method(method: &str) -> Op {
        match method {
            "GET" | "HEAD" => Op::Reads,
            "DELETE" => Op::Deletes,
            _ => Op::Writes,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Op::Reads => "reads",
            Op::Writes => "writes",
            Op::Deletes => "deletes",
        }
    }
}

/// A token bucket's shape: `burst` tokens, refilled at `per_second`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rate {
    pub burst: f64,
    pub per_second: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rates {
    pub reads: Rate,
    pub writes: Rate,
    pub deletes: Rate,
}

impl Rates {
    /// ARM's regional token buckets per principal (2024 model).
    pub const ARM: Rates = Rates {
        reads: Rate {
            burst: 250.0,
            per_second: 25.0,
        },
        writes: Rate {
            burst: 200.0,
            per_second: 10.0,
        },
        deletes: Rate {
            burst: 200.0,
            per_second: 10.0,
        },
    };

    fn of(&self, op: Op) -> Rate {
        match op {
            Op::Reads => self.reads,
            Op::Writes => self.writes,
            Op::Deletes => self.deletes,
        }
    }

    /// `off`, `arm`, or `READS,WRITES,DELETES` where each is `BURST/PER_SECOND` or
    /// one number used for both.
    pub fn parse(text: &str) -> Result<Option<Rates>, String> {
        match text.trim() {
            "off" | "" => return Ok(None),
            "arm" => return Ok(Some(Rates::ARM)),
            _ => {}
        }
        let parts: Vec<&str> = text.split(',').collect();
        let [r, w, d] = parts.as_slice() else {
            return Err(format!(
                "throttle '{text}' is not off, arm, or READS,WRITES,DELETES (each BURST/PER_SECOND)"
            ));
        };
        let rate = |s: &str| -> Result<Rate, String> {
            let bad = || format!("throttle rate '{s}' is not a number or BURST/PER_SECOND");
            let (burst, per) = match s.split_once('/') {
                Some((b, p)) => (
                    b.trim().parse().map_err(|_| bad())?,
                    p.trim().parse().map_err(|_| bad())?,
                ),
                None => {
                    let n: f64 = s.trim().parse().map_err(|_| bad())?;
                    (n, n)
                }
            };
            if burst < 1.0 || per <= 0.0 {
                return Err(format!(
                    "throttle rate '{s}' must have a burst of at least 1 and a positive refill"
                ));
            }
            Ok(Rate {
                burst,
                per_second: per,
            })
        };
        Ok(Some(Rates {
            reads: rate(r)?,
            writes: rate(w)?,
            deletes: rate(d)?,
        }))
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Token buckets per principal and operation class.
#[derive(Debug, Default)]
pub struct Buckets {
    buckets: HashMap<(String, Op), Bucket>,
}

impl Buckets {
    /// Takes one token; Ok(remaining) or Err(time until a token is available).
    pub fn take(
        &mut self,
        principal: &str,
        op: Op,
        rates: &Rates,
        now: Instant,
    ) -> Result<u64, Duration> {
        let rate = rates.of(op);
        let bucket = self
            .buckets
            .entry((principal.to_string(), op))
            .or_insert(Bucket {
                tokens: rate.burst,
                last: now,
            });
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate.per_second).min(rate.burst);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(bucket.tokens.floor() as u64)
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - bucket.tokens) / rate.per_second,
            ))
        }
    }

    pub fn remaining(&self, principal: &str, op: Op) -> Option<u64> {
        self.buckets
            .get(&(principal.to_string(), op))
            .map(|b| b.tokens.floor() as u64)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Settings {
    pub page_size: usize,
    pub latency_ms: u64,
    pub throttle: Option<Rates>,
    /// Probability of a random 500, 503 or dropped connection per ARM/Key Vault request.
    pub fault_rate: f64,
    pub token_lifetime_secs: i64,
    /// How long a pipeline run takes before it succeeds (or fails, when told to).
    pub run_duration_ms: u64,
    /// Real durations of long-running operations (an Azure-SSIS IR start
    /// takes about 22 minutes, TestSsisAzureIntegrationRuntime.json) and
    /// their Retry-After (15 s), multiplied by this: 0.001 keeps tests fast,
    /// 1.0 is the service's pace.
    pub time_scale: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            page_size: 50,
            latency_ms: 0,
            throttle: None,
            fault_rate: 0.0,
            token_lifetime_secs: 3600,
            run_duration_ms: 1500,
            time_scale: 0.001,
        }
    }
}

/// A partial update of the settings (admin API).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct SettingsPatch {
    pub page_size: Option<usize>,
    pub latency_ms: Option<u64>,
    pub throttle: Option<String>,
    pub fault_rate: Option<f64>,
    pub token_lifetime_secs: Option<i64>,
    pub run_duration_ms: Option<u64>,
    pub time_scale: Option<f64>,
}

impl Settings {
    /// A real duration at the emulator's pace.
    pub fn scaled(&self, real: std::time::Duration) -> i128 {
        (real.as_millis() as f64 * self.time_scale) as i128
    }

    /// The Retry-After (whole seconds) the service sends with a long-running
    /// operation (15 s), at the emulator's pace.
    pub fn retry_after(&self) -> String {
        ((15.0 * self.time_scale).round() as u64).to_string()
    }

    pub fn apply(&mut self, patch: SettingsPatch) -> Result<(), String> {
        if let Some(p) = patch.page_size {
            if p == 0 {
                return Err("page_size must be at least 1".into());
            }
            self.page_size = p;
        }
        if let Some(t) = patch.throttle {
            self.throttle = Rates::parse(&t)?;
        }
        if let Some(f) = patch.fault_rate {
            if !(0.0..=1.0).contains(&f) {
                return Err("fault_rate must be between 0 and 1".into());
            }
            self.fault_rate = f;
        }
        self.latency_ms = patch.latency_ms.unwrap_or(self.latency_ms);
        self.token_lifetime_secs = patch
            .token_lifetime_secs
            .unwrap_or(self.token_lifetime_secs);
        self.run_duration_ms = patch.run_duration_ms.unwrap_or(self.run_duration_ms);
        if let Some(scale) = patch.time_scale {
            if !(0.0..=10.0).contains(&scale) {
                return Err("time_scale must be between 0 and 10".into());
            }
            self.time_scale = scale;
        }
        Ok(())
    }
}

/// A fault a test scripts: the next `count` matching requests get this answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScriptedFault {
    /// reads, writes or deletes; absent: any.
    #[serde(default)]
    pub op: Option<Op>,
    #[serde(default)]
    pub method: Option<String>,
    /// A case-insensitive substring of the request path.
    #[serde(default)]
    pub path_contains: Option<String>,
    #[serde(default = "one")]
    pub count: u32,
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub retry_after: Option<u64>,
    /// Close the connection without answering.
    #[serde(default)]
    pub drop: bool,
}

fn one() -> u32 {
    1
}

impl ScriptedFault {
    fn matches(&self, method: &str, path: &str) -> bool {
        self.count > 0
            && self.op.is_none_or(|op| op == Op::of_method(method))
            && self
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && self
                .path_contains
                .as_deref()
                .is_none_or(|p| path.to_ascii_lowercase().contains(&p.to_ascii_lowercase()))
    }
}

/// A change the emulator makes to a definition: on PUT (what gets stored differs
/// from what was sent) or on GET (what is read back differs from what is stored).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Mutation {
    #[serde(default = "on_put")]
    pub on: String,
    /// The kind's path segment (`pipelines`, `linkedservices`, ...); absent: any.
    #[serde(default)]
    pub kind: Option<String>,
    /// Resource name, `*` wildcards allowed; absent: any.
    #[serde(default)]
    pub name: Option<String>,
    /// JSON Pointer into the resource body, e.g. `/properties/description`.
    pub pointer: String,
    /// The value to set; absent: remove the property.
    #[serde(default)]
    pub set: Option<Value>,
    /// How many times; absent: until reset.
    #[serde(default)]
    pub count: Option<u32>,
}

fn on_put() -> String {
    "put".into()
}

pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.to_ascii_lowercase().chars().collect();
    let t: Vec<char> = text.to_ascii_lowercase().chars().collect();
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

impl Mutation {
    fn matches(&self, on: &str, kind_segment: &str, name: &str) -> bool {
        self.count != Some(0)
            && self.on.eq_ignore_ascii_case(on)
            && self
                .kind
                .as_deref()
                .is_none_or(|k| k.eq_ignore_ascii_case(kind_segment))
            && self.name.as_deref().is_none_or(|n| glob_match(n, name))
    }

    /// Applies the mutation; returns whether the pointer's parent existed.
    pub fn apply(&self, body: &mut Value) -> bool {
        let (parent, key) = match self.pointer.rsplit_once('/') {
            Some((p, k)) => (p, k.replace("~1", "/").replace("~0", "~")),
            None => return false,
        };
        match (body.pointer_mut(parent), &self.set) {
            (Some(Value::Object(map)), Some(v)) => {
                map.insert(key, v.clone());
                true
            }
            (Some(Value::Object(map)), None) => map.remove(&key).is_some(),
            _ => false,
        }
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Counters {
    pub requests: u64,
    pub by_op: BTreeMap<String, u64>,
    pub by_status: BTreeMap<u16, u64>,
    /// "METHOD kind" for ARM requests, e.g. "PUT pipelines".
    pub by_route: BTreeMap<String, u64>,
    pub throttled: u64,
    pub injected_faults: u64,
    pub tokens_issued: u64,
    /// ARM requests per region of the resource they address (emulator::regions).
    pub by_region: BTreeMap<String, u64>,
}

#[derive(Debug, Default)]
pub struct Control {
    pub settings: Settings,
    /// Regions down, and resources declared outside factories.
    pub regions: crate::regions::Regions,
    pub faults: Vec<ScriptedFault>,
    pub mutations: Vec<Mutation>,
    pub counters: Counters,
    pub buckets: Buckets,
}

impl Control {
    /// The first scripted fault matching the request, consumed.
    pub fn take_fault(&mut self, method: &str, path: &str) -> Option<ScriptedFault> {
        let fault = self.faults.iter_mut().find(|f| f.matches(method, path))?;
        fault.count -= 1;
        let taken = fault.clone();
        self.faults.retain(|f| f.count > 0);
        self.counters.injected_faults += 1;
        Some(taken)
    }

    /// Applies every matching mutation to a body.
    pub fn mutate(&mut self, on: &str, kind_segment: &str, name: &str, body: &mut Value) {
        for m in self
            .mutations
            .iter_mut()
            .filter(|m| m.matches(on, kind_segment, name))
        {
            if m.apply(body)
                && let Some(c) = m.count.as_mut()
            {
                *c -= 1;
            }
        }
    }

    pub fn reset(&mut self) {
        let settings = self.settings.clone();
        *self = Control {
            settings,
            ..Default::default()
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_drains_then_refills() {
        let rates = Rates::parse("3/1,2/1,1/1").expect("parse").expect("on");
        let mut b = Buckets::default();
        let t0 = Instant::now();
        assert_eq!(b.take("p", Op::Writes, &rates, t0), Ok(1));
        assert_eq!(b.take("p", Op::Writes, &rates, t0), Ok(0));
        let wait = b.take("p", Op::Writes, &rates, t0).unwrap_err();
        assert!(
            wait > Duration::from_millis(900) && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert!(
            b.take("other", Op::Writes, &rates, t0).is_ok(),
            "buckets are per principal"
        );
        assert!(
            b.take("p", Op::Writes, &rates, t0 + Duration::from_secs(1))
                .is_ok()
        );
    }

    #[test]
    fn throttle_parsing() {
        assert_eq!(Rates::parse("off"), Ok(None));
        assert_eq!(Rates::parse("arm"), Ok(Some(Rates::ARM)));
        assert_eq!(
            Rates::parse("5,5,5").expect("ok").expect("on").reads.burst,
            5.0
        );
        assert!(Rates::parse("5,5").is_err());
        assert!(Rates::parse("a,b,c").is_err());
        assert!(Rates::parse("0,1,1").is_err());
    }

    #[test]
    fn scripted_faults_are_consumed() {
        let mut c = Control::default();
        c.faults.push(ScriptedFault {
            op: Some(Op::Writes),
            method: None,
            path_contains: None,
            count: 2,
            status: Some(500),
            code: None,
            message: None,
            retry_after: None,
            drop: false,
        });
        assert!(c.take_fault("GET", "/x").is_none());
        assert!(c.take_fault("PUT", "/x").is_some());
        assert!(c.take_fault("POST", "/x").is_some());
        assert!(c.take_fault("PUT", "/x").is_none());
    }

    #[test]
    fn mutations_set_and_remove() {
        let mut body = serde_json::json!({"properties": {"description": "d", "a": 1}});
        let set = Mutation {
            on: "put".into(),
            kind: None,
            name: Some("pl_*".into()),
            pointer: "/properties/description".into(),
            set: Some("x".into()),
            count: Some(1),
        };
        let mut c = Control {
            mutations: vec![set],
            ..Default::default()
        };
        c.mutate("put", "pipelines", "other", &mut body);
        assert_eq!(body["properties"]["description"], "d");
        c.mutate("put", "pipelines", "PL_Main", &mut body);
        assert_eq!(body["properties"]["description"], "x");
        body["properties"]["description"] = "d".into();
        c.mutate("put", "pipelines", "pl_main", &mut body);
        assert_eq!(body["properties"]["description"], "d", "count exhausted");
        let remove = Mutation {
            on: "get".into(),
            kind: None,
            name: None,
            pointer: "/properties/a".into(),
            set: None,
            count: None,
        };
        assert!(remove.apply(&mut body));
        assert!(body["properties"].get("a").is_none());
    }

    #[test]
    fn globs() {
        assert!(glob_match("*", "x"));
        assert!(glob_match("pl_*_x", "PL_a_b_X"));
        assert!(!glob_match("pl_?", "pl_ab"));
    }
}
