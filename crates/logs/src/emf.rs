//! CloudWatch's embedded metric format: JSON log lines whose `_aws.CloudWatchMetrics` declares
//! metrics (namespace, dimension sets, names) whose values are the line's own fields. The
//! [`Collector`] reads what the engine appended to the log streams since its last call (at
//! scrape time, so the invoke path pays nothing) and keeps each series' count and sum.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

use serde_json::Value;

use crate::store::LogStore;

/// One value set of a declared metric: its series and the values the line carried.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub series: Series,
    pub values: Vec<f64>,
}

/// A metric series: namespace, name, unit and dimension values.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Series {
    pub namespace: String,
    pub name: String,
    pub unit: String,
    pub dimensions: Vec<(String, String)>,
}

/// The metrics one log line declares (none when it is not an EMF line).
pub fn parse_line(line: &str) -> Vec<Sample> {
    if !line.contains("\"_aws\"") {
        return Vec::new();
    }
    let Ok(Value::Object(root)) = serde_json::from_str::<Value>(line.trim()) else {
        return Vec::new();
    };
    let Some(directives) = root
        .get("_aws")
        .and_then(|a| a.get("CloudWatchMetrics"))
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for d in directives {
        let namespace = d.get("Namespace").and_then(Value::as_str).unwrap_or("");
        let metrics = d.get("Metrics").and_then(Value::as_array);
        let sets: Vec<Vec<&str>> = match d.get("Dimensions").and_then(Value::as_array) {
            Some(sets) => sets
                .iter()
                .filter_map(Value::as_array)
                .map(|s| s.iter().filter_map(Value::as_str).collect())
                .collect(),
            None => vec![Vec::new()],
        };
        for m in metrics.into_iter().flatten() {
            let Some(name) = m.get("Name").and_then(Value::as_str) else {
                continue;
            };
            let unit = m.get("Unit").and_then(Value::as_str).unwrap_or("None");
            let values: Vec<f64> = match root.get(name) {
                Some(Value::Number(n)) => n.as_f64().into_iter().collect(),
                Some(Value::Array(a)) => a.iter().filter_map(Value::as_f64).collect(),
                _ => continue,
            };
            for set in &sets {
                // A dimension whose value is missing makes the set invalid, as in CloudWatch.
                let dims: Option<Vec<(String, String)>> = set
                    .iter()
                    .map(|k| {
                        let v = root.get(*k)?;
                        let v = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                        Some((k.to_string(), v))
                    })
                    .collect();
                let Some(dimensions) = dims else { continue };
                out.push(Sample {
                    series: Series {
                        namespace: namespace.to_string(),
                        name: name.to_string(),
                        unit: unit.to_string(),
                        dimensions,
                    },
                    values: values.clone(),
                });
            }
        }
    }
    out
}

/// A series' aggregate: how many values, their sum, and the last one.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Aggregate {
    pub count: u64,
    pub sum: f64,
    pub last: f64,
}

/// Follows an account-region's log streams and aggregates the EMF metrics they carry.
#[derive(Debug, Default)]
pub struct Collector {
    offsets: HashMap<PathBuf, u64>,
    series: BTreeMap<Series, Aggregate>,
}

/// At most this much of a stream is read per call (the rest waits for the next scrape).
const MAX_READ: u64 = 16 * 1024 * 1024;

impl Collector {
    /// Reads what was appended to the streams since the last call.
    pub fn update(&mut self, store: &LogStore) -> std::io::Result<()> {
        for s in store.streams()? {
            let offset = self.offsets.get(&s.path).copied().unwrap_or(0);
            if s.bytes <= offset {
                continue;
            }
            let mut f = std::fs::File::open(&s.path)?;
            f.seek(SeekFrom::Start(offset))?;
            let mut buf = Vec::new();
            f.take(MAX_READ).read_to_end(&mut buf)?;
            // Only complete lines; a partial one is read again next time.
            let complete = buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            for line in buf[..complete].split(|&b| b == b'\n') {
                let Ok(text) = std::str::from_utf8(line) else {
                    continue;
                };
                for sample in parse_line(text) {
                    let a = self.series.entry(sample.series).or_default();
                    for v in sample.values {
                        a.count += 1;
                        a.sum += v;
                        a.last = v;
                    }
                }
            }
            self.offsets.insert(s.path, offset + complete as u64);
        }
        Ok(())
    }

    pub fn series(&self) -> impl Iterator<Item = (&Series, &Aggregate)> {
        self.series.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example of "Specification: Embedded metric format" in the CloudWatch User Guide.
    const LINE: &str = r#"{"_aws":{"Timestamp":1574109732004,"CloudWatchMetrics":[{"Namespace":"lambda-function-metrics","Dimensions":[["functionVersion"]],"Metrics":[{"Name":"time","Unit":"Milliseconds","StorageResolution":60}]}]},"functionVersion":"$LATEST","time":100,"requestId":"989ffbf8-9ace-4817-a57c-e4dd734019ee"}"#;

    #[test]
    fn the_guides_example_declares_one_series() {
        let s = parse_line(LINE);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].series.namespace, "lambda-function-metrics");
        assert_eq!(s[0].series.name, "time");
        assert_eq!(s[0].series.unit, "Milliseconds");
        assert_eq!(
            s[0].series.dimensions,
            vec![("functionVersion".to_string(), "$LATEST".to_string())]
        );
        assert_eq!(s[0].values, vec![100.0]);
    }

    #[test]
    fn arrays_of_values_and_missing_dimensions() {
        let line = r#"{"_aws":{"CloudWatchMetrics":[{"Namespace":"n","Dimensions":[["a"],["missing"]],"Metrics":[{"Name":"v"}]}]},"a":"x","v":[1,2,3]}"#;
        let s = parse_line(line);
        assert_eq!(s.len(), 1, "the set naming a missing field is dropped");
        assert_eq!(s[0].values, vec![1.0, 2.0, 3.0]);
        assert!(parse_line("plain text").is_empty());
        assert!(parse_line(r#"{"_aws": 5}"#).is_empty());
    }

    #[test]
    fn the_collector_reads_only_what_is_new() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let f = dir.path().join("fn/2026/01/01");
        std::fs::create_dir_all(&f)?;
        let path = f.join("[$LATEST]aa.log");
        std::fs::write(&path, format!("START\n{LINE}\n"))?;
        let store = LogStore::new(dir.path());
        let mut c = Collector::default();
        c.update(&store)?;
        c.update(&store)?;
        let got: Vec<Aggregate> = c.series().map(|(_, a)| *a).collect();
        assert_eq!(
            got,
            vec![Aggregate {
                count: 1,
                sum: 100.0,
                last: 100.0
            }]
        );
        std::fs::write(
            &path,
            format!("START\n{LINE}\n{}\n", LINE.replace("100", "50")),
        )?;
        c.update(&store)?;
        let got: Vec<Aggregate> = c.series().map(|(_, a)| *a).collect();
        assert_eq!(
            got,
            vec![Aggregate {
                count: 2,
                sum: 150.0,
                last: 50.0
            }]
        );
        Ok(())
    }
}
