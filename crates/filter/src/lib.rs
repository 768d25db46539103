//! Lambda event filtering: the `FilterCriteria` of an event source mapping, parsed and validated
//! as AWS validates it at CreateEventSourceMapping/UpdateEventSourceMapping, and matched against
//! each record a poller reads so only matching records reach the function. The pattern language
//! is EventBridge's (AWS's engine is event-ruler); each source decides which field holds the
//! message data and how it is decoded before matching.
#![forbid(unsafe_code)]

mod event;
mod pattern;
mod rule;

use base64::Engine as _;
use serde_json::Value;

use crate::event::Leaves;
use crate::pattern::Pattern;

/// Filters a mapping may have: AWS's default quota (it can be raised to 10 on request).
pub const MAX_FILTERS: usize = 5;
/// Characters in one pattern (the API model's limit for `Filter.Pattern`).
pub const MAX_PATTERN_LENGTH: usize = 4096;

/// Which event source a record comes from: decides which field holds the message data and how it
/// is decoded before matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Sqs,
    Kinesis,
    DynamoDbStreams,
    Kafka,
    RabbitMq,
    ActiveMq,
    DocumentDb,
}

/// Where a source's message data is in a record and what patterns call it.
struct DataField {
    /// Where the (encoded) data sits in the record, from the root.
    location: &'static [&'static str],
    /// The top-level key patterns address the decoded data by.
    key: &'static str,
    base64: bool,
}

impl Source {
    fn data_field(self) -> Option<DataField> {
        let (location, key, base64): (&'static [&'static str], _, _) = match self {
            Source::Sqs => (&["body"], "body", false),
            // Patterns say `data`, not `kinesis.data` (AWS's Kinesis filtering guide).
            Source::Kinesis => (&["kinesis", "data"], "data", true),
            Source::Kafka => (&["value"], "value", true),
            Source::RabbitMq | Source::ActiveMq => (&["data"], "data", true),
            // DynamoDB records are JSON already (`dynamodb.NewImage…`); AWS does not filter
            // DocumentDB, so its records are matched as they are.
            Source::DynamoDbStreams | Source::DocumentDb => return None,
        };
        Some(DataField {
            location,
            key,
            base64,
        })
    }
}

/// Why `FilterCriteria` was refused. Lambda answers every invalid pattern with the same
/// `InvalidParameterValueException` message; `reason` keeps the engine's explanation for logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// Invalid filter pattern definition.
    #[error("Invalid filter pattern definition.")]
    InvalidPattern { reason: String },
    /// More filters than the quota allows. AWS's wording for this is not documented.
    #[error(
        "The FilterCriteria has {count} filters; the maximum number of filters allowed is {max}."
    )]
    TooManyFilters { count: usize, max: usize },
}

impl FilterError {
    fn invalid(reason: impl Into<String>) -> FilterError {
        FilterError::InvalidPattern {
            reason: reason.into(),
        }
    }
}

/// The parsed `FilterCriteria` of a mapping: a record passes when any filter matches it.
#[derive(Debug, Clone, Default)]
pub struct FilterSet {
    filters: Vec<Pattern>,
    /// Every path any filter names: a record is flattened only along these.
    paths: Vec<String>,
}

impl FilterSet {
    /// Parses and validates `FilterCriteria` as stored in the mapping config
    /// (`{"Filters":[{"Pattern":"<json text>"}, ...]}`); Err carries AWS's message for
    /// InvalidParameterValueException.
    pub fn parse(criteria: &Value) -> Result<FilterSet, FilterError> {
        let filters = match criteria {
            Value::Null => return Ok(FilterSet::default()),
            Value::Object(o) => match o.get("Filters") {
                None | Some(Value::Null) => return Ok(FilterSet::default()),
                Some(Value::Array(filters)) => filters,
                Some(_) => return Err(FilterError::invalid("Filters is not a list")),
            },
            _ => return Err(FilterError::invalid("FilterCriteria is not an object")),
        };
        if filters.len() > MAX_FILTERS {
            return Err(FilterError::TooManyFilters {
                count: filters.len(),
                max: MAX_FILTERS,
            });
        }
        let mut set = FilterSet::default();
        for filter in filters {
            let text = filter
                .get("Pattern")
                .and_then(Value::as_str)
                .filter(|p| !p.is_empty())
                .ok_or_else(|| FilterError::invalid("Pattern is missing"))?;
            if text.chars().count() > MAX_PATTERN_LENGTH {
                return Err(FilterError::invalid(format!(
                    "Pattern is longer than {MAX_PATTERN_LENGTH} characters"
                )));
            }
            let pattern = Pattern::parse(text).map_err(FilterError::invalid)?;
            set.paths.extend(pattern.paths());
            set.filters.push(pattern);
        }
        set.paths.sort();
        set.paths.dedup();
        Ok(set)
    }

    /// True when the set has no filters (every record passes).
    pub fn is_empty(&self) -> bool {
        self.filters.is_empty()
    }

    /// Whether a record (the per-record JSON object exactly as it goes into the event Lambda
    /// sends, e.g. one element of SQS `Records`) passes: any filter matching is enough. The data
    /// field is decoded (base64 where the source encodes it) and parsed as JSON when it is a JSON
    /// object or array; otherwise patterns see it as a plain string, so a JSON pattern for the
    /// data does not match a plain-string message and a plain-string pattern does not match a JSON
    /// one, as AWS documents for SQS. Patterns address the data under `body` (SQS), `data`
    /// (Kinesis, Amazon MQ) or `value` (Kafka).
    pub fn matches(&self, source: Source, record: &Value) -> bool {
        if self.is_empty() {
            return true;
        }
        let wanted = |path: &str| {
            // Sorted: the first path not below `path` ends the run that could start with it.
            let start = self.paths.partition_point(|p| p.as_str() < path);
            self.paths[start..]
                .iter()
                .take_while(|p| p.starts_with(path))
                .any(|p| p.len() == path.len() || p[path.len()..].starts_with('.'))
        };
        let field = source.data_field();
        let data = field.as_ref().map_or(Data::Absent, |f| decode(f, record));
        let mut leaves = Leaves::default();
        match (&field, record) {
            (Some(field), Value::Object(object)) => {
                // The record's own fields, but the data key only as decoded below.
                for (key, value) in object {
                    if key != field.key && wanted(key) {
                        leaves.add(value, key, &wanted);
                    }
                }
                if let Data::Decoded(value) = &data {
                    if wanted(field.key) {
                        leaves.add(value, field.key, &wanted);
                    }
                }
            }
            _ => leaves.add(record, "", &wanted),
        }
        self.filters.iter().any(|pattern| {
            // Undecodable data (not base64, not UTF-8) fails every filter that looks at it.
            if let (Data::Unreadable, Some(field)) = (&data, &field) {
                if pattern.names_top_level(field.key) {
                    return false;
                }
            }
            leaves.matches(pattern)
        })
    }
}

/// A record's data field, ready for matching.
enum Data {
    Absent,
    Unreadable,
    Decoded(Value),
}

fn locate<'a>(record: &'a Value, location: &[&str]) -> Option<&'a Value> {
    location.iter().try_fold(record, |v, key| v.get(key))
}

/// The data field as patterns see it: parsed when it is a JSON object or array, else a string.
fn decode(field: &DataField, record: &Value) -> Data {
    let Some(raw) = locate(record, field.location).filter(|v| !v.is_null()) else {
        return Data::Absent;
    };
    let Value::String(text) = raw else {
        // Already structured (a poller that parsed it): match it as it is.
        return Data::Decoded(raw.clone());
    };
    let text = if field.base64 {
        let bytes = base64::engine::general_purpose::STANDARD.decode(text);
        match bytes.ok().and_then(|b| String::from_utf8(b).ok()) {
            Some(text) => text,
            None => return Data::Unreadable,
        }
    } else {
        text.clone()
    };
    match serde_json::from_str::<Value>(&text) {
        Ok(json @ (Value::Object(_) | Value::Array(_))) => Data::Decoded(json),
        _ => Data::Decoded(Value::String(text)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set(patterns: &[Value]) -> FilterSet {
        let filters: Vec<Value> = patterns
            .iter()
            .map(|p| json!({ "Pattern": p.to_string() }))
            .collect();
        FilterSet::parse(&json!({ "Filters": filters })).unwrap()
    }

    fn one(pattern: &Value) -> FilterSet {
        set(std::slice::from_ref(pattern))
    }

    fn sqs(body: &str) -> Value {
        json!({"messageId": "059f36b4", "body": body, "attributes": {"ApproximateReceiveCount": "1"},
               "messageAttributes": {}, "eventSource": "aws:sqs", "awsRegion": "us-east-2"})
    }

    fn b64(text: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(text)
    }

    #[test]
    fn no_filters_let_every_record_pass() {
        for criteria in [
            json!(null),
            json!({}),
            json!({"Filters": []}),
            json!({"Filters": null}),
        ] {
            let s = FilterSet::parse(&criteria).unwrap();
            assert!(s.is_empty());
            assert!(s.matches(Source::Sqs, &sqs("anything")));
        }
        assert!(!set(&[json!({"body": ["x"]})]).is_empty());
    }

    #[test]
    fn invalid_patterns_carry_lambdas_message() {
        for filter in [
            json!({"Pattern": "simple string"}),
            json!({"Pattern": "null"}),
            json!({"Pattern": r#"{"eventSource": "aws:sqs"}"#}),
            json!({"Pattern": r#"{"eventSource": []}"#}),
            json!({"Pattern": ""}),
            json!({}),
            json!({"Pattern": 5}),
        ] {
            let err = FilterSet::parse(&json!({"Filters": [filter]})).unwrap_err();
            assert_eq!(
                err.to_string(),
                "Invalid filter pattern definition.",
                "{filter}"
            );
        }
        let long = format!(r#"{{"body": ["{}"]}}"#, "x".repeat(MAX_PATTERN_LENGTH));
        let err = FilterSet::parse(&json!({"Filters": [{"Pattern": long}]})).unwrap_err();
        assert!(matches!(err, FilterError::InvalidPattern { .. }));
        let FilterError::InvalidPattern { reason } =
            FilterSet::parse(&json!({"Filters": [{"Pattern": "{\"a\": [{\"cidr\": \"x\"}]}"}]}))
                .unwrap_err()
        else {
            panic!("expected an invalid pattern");
        };
        assert_eq!(reason, "Malformed CIDR, one '/' required");
    }

    #[test]
    fn more_than_five_filters_are_refused() {
        let filter = json!({"Pattern": r#"{"body": ["x"]}"#});
        let five = json!({"Filters": vec![filter.clone(); 5]});
        assert!(FilterSet::parse(&five).is_ok());
        let six = json!({"Filters": vec![filter; 6]});
        assert_eq!(
            FilterSet::parse(&six).unwrap_err(),
            FilterError::TooManyFilters { count: 6, max: 5 }
        );
    }

    #[test]
    fn any_filter_matching_is_enough() {
        let s = set(&[
            json!({"body": {"RequestCode": ["BBBB"]}}),
            json!({"body": {"RecordNumber": [{"numeric": [">", 9999]}]}}),
        ]);
        assert!(s.matches(
            Source::Sqs,
            &sqs(r#"{"RecordNumber": 1234, "RequestCode": "BBBB"}"#)
        ));
        assert!(s.matches(
            Source::Sqs,
            &sqs(r#"{"RecordNumber": 10000, "RequestCode": "AAAA"}"#)
        ));
        assert!(!s.matches(
            Source::Sqs,
            &sqs(r#"{"RecordNumber": 1234, "RequestCode": "AAAA"}"#)
        ));
    }

    #[test]
    fn sqs_bodies_are_matched_as_json_when_they_are_json() {
        // AWS's SQS table: the body pattern and the body must agree on being JSON.
        let json_pattern = set(&[json!({"body": {"my-key": ["my-value"]}})]);
        assert!(json_pattern.matches(Source::Sqs, &sqs(r#"{"my-key": "my-value"}"#)));
        assert!(!json_pattern.matches(Source::Sqs, &sqs(r#"{"my-key": "other-value"}"#)));
        assert!(!json_pattern.matches(Source::Sqs, &sqs("plain-string")));
        let string_pattern = set(&[json!({"body": [{"prefix": "plain"}]})]);
        assert!(string_pattern.matches(Source::Sqs, &sqs("plain-string")));
        assert!(!string_pattern.matches(Source::Sqs, &sqs(r#"{"plain": "x"}"#)));
        // JSON scalars stay strings: "123" is not the number 123.
        assert!(set(&[json!({"body": ["123"]})]).matches(Source::Sqs, &sqs("123")));
        // Metadata fields are matched as they are.
        let metadata = set(&[json!({"attributes": {"ApproximateReceiveCount": ["1"]}})]);
        assert!(metadata.matches(Source::Sqs, &sqs("plain")));
    }

    #[test]
    fn sqs_filters_from_aws_recordings() {
        for (pattern, matching, not_matching) in [
            (
                json!({"body": {"testItem": ["test24", "test45"], "test2": ["go"]}}),
                json!({"testItem": "test45", "test2": "go"}),
                json!({"testItem": "test45", "test2": "stop"}),
            ),
            (
                json!({"body": {"test2": [{"exists": true}]}}),
                json!({"test2": "x"}),
                json!({"test3": "x"}),
            ),
            (
                json!({"body": {"my-number": [{"numeric": [">", 100]}]}}),
                json!({"my-number": 101}),
                json!({"my-number": 100}),
            ),
            (
                json!({"body": {"my-number": [{"numeric": ["<", 100]}]}}),
                json!({"my-number": 99}),
                json!({"my-number": 100}),
            ),
            (
                json!({"body": {"my-number": [{"numeric": [">=", 100, "<", 200]}]}}),
                json!({"my-number": 100}),
                json!({"my-number": 200}),
            ),
            (
                json!({"body": {"test2": [{"prefix": "us-1"}]}}),
                json!({"test2": "us-1-48454"}),
                json!({"test2": "eu-1-48454"}),
            ),
        ] {
            let s = one(&pattern);
            assert!(
                s.matches(Source::Sqs, &sqs(&matching.to_string())),
                "{pattern} {matching}"
            );
            assert!(
                !s.matches(Source::Sqs, &sqs(&not_matching.to_string())),
                "{pattern} {not_matching}"
            );
        }
    }

    #[test]
    fn kinesis_data_is_decoded_and_addressed_as_data() {
        let record = |data: &str| {
            json!({"kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": "1",
                               "sequenceNumber": "4959", "data": b64(data),
                               "approximateArrivalTimestamp": 1545084650.987},
                   "eventSource": "aws:kinesis", "eventName": "aws:kinesis:record"})
        };
        let s = set(&[json!({"data": {"order": {"type": ["buy"]}}})]);
        assert!(s.matches(
            Source::Kinesis,
            &record(r#"{"record": 12345, "order": {"type": "buy", "quantity": 1000}}"#)
        ));
        assert!(!s.matches(Source::Kinesis, &record(r#"{"order": {"type": "sell"}}"#)));
        assert!(!s.matches(Source::Kinesis, &record("not json")));
        let by_key = set(&[json!({"kinesis": {"partitionKey": ["1"]}})]);
        assert!(by_key.matches(Source::Kinesis, &record("not json")));
    }

    #[test]
    fn undecodable_data_fails_filters_on_the_data_only() {
        let record = json!({"kinesis": {"partitionKey": "1", "data": "%%% not base64"}});
        assert!(!set(&[json!({"data": [{"exists": false}]})]).matches(Source::Kinesis, &record));
        assert!(
            set(&[json!({"kinesis": {"partitionKey": ["1"]}})]).matches(Source::Kinesis, &record)
        );
        let not_utf8 =
            json!({"data": base64::engine::general_purpose::STANDARD.encode([0xff, 0xfe])});
        assert!(
            !set(&[json!({"data": [{"anything-but": "x"}]})]).matches(Source::ActiveMq, &not_utf8)
        );
    }

    #[test]
    fn dynamodb_records_are_matched_as_they_are() {
        let record = json!({"eventName": "INSERT", "eventSource": "aws:dynamodb",
            "dynamodb": {"ApproximateCreationDateTime": 1733418659.0,
                         "Keys": {"Id": {"N": "101"}},
                         "NewImage": {"Id": {"N": "101"}, "numericFilter": {"N": "42"},
                                      "presentKey": {"S": "presentValue"}}}});
        let yes = [
            json!({"eventName": ["INSERT", "MODIFY"]}),
            json!({"dynamodb": {"Keys": {"Id": {"N": ["101"]}}}}),
            json!({"dynamodb": {"NewImage": {"presentKey": {"S": ["presentValue"]}}}}),
            json!({"dynamodb": {"NewImage": {"absentKey": [{"exists": false}]}}}),
            // exists looks at leaves only: an attribute (an object) is "absent" (AWS passed both
            // records of localstack's exists_false_filter recording).
            json!({"dynamodb": {"NewImage": {"presentKey": [{"exists": false}]}}}),
            json!({"dynamodb": {"ApproximateCreationDateTime": [{"numeric": [">", 0]}]}}),
            // "N" values are strings: numeric never matches them, anything-but does.
            json!({"dynamodb": {"NewImage": {"numericFilter": {"N": [{"numeric": [">", 100]}, {"anything-but": "101"}]}}}}),
        ];
        let no = [
            json!({"eventName": ["REMOVE"]}),
            json!({"dynamodb": {"NewImage": {"presentKey": ["presentValue"]}}}),
            json!({"dynamodb": {"NewImage": {"numericFilter": {"N": [{"numeric": [">", 10]}]}}}}),
        ];
        for p in yes {
            assert!(one(&p).matches(Source::DynamoDbStreams, &record), "{p}");
        }
        for p in no {
            assert!(!one(&p).matches(Source::DynamoDbStreams, &record), "{p}");
        }
    }

    #[test]
    fn kafka_values_and_mq_data_may_be_json_or_plain_strings() {
        let kafka = |value: &str| {
            json!({"topic": "mytopic", "partition": 0, "offset": 15, "timestamp": 1545084650987_u64,
                   "timestampType": "CREATE_TIME", "value": b64(value), "headers": []})
        };
        let device = set(&[json!({"value": {"device_ID": [{"prefix": "AB"}]}})]);
        assert!(device.matches(
            Source::Kafka,
            &kafka(r#"{"device_ID": "AB1234", "session": {"duration": 162}}"#)
        ));
        assert!(!device.matches(Source::Kafka, &kafka(r#"{"device_ID": "CD1234"}"#)));
        let not_error = set(&[json!({"value": [{"anything-but": ["error"]}]})]);
        assert!(not_error.matches(Source::Kafka, &kafka("all good")));
        assert!(!not_error.matches(Source::Kafka, &kafka("error")));

        let mq = |data: &str| json!({"messageID": "ID:b-9bcf", "messageType": "jms/text-message", "data": b64(data)});
        let timeout = set(&[json!({"data": {"timeout": [{"numeric": [">", 0]}]}})]);
        assert!(timeout.matches(
            Source::ActiveMq,
            &mq(r#"{"timeout": 5, "IPAddress": "203.0.113.254"}"#)
        ));
        assert!(!timeout.matches(
            Source::RabbitMq,
            &mq(r#"{"timeout": 0, "IPAddress": "203.0.113.254"}"#)
        ));
        let result = set(&[json!({"data": [{"prefix": "Result: "}]})]);
        assert!(result.matches(Source::RabbitMq, &mq("Result: ok")));
        assert!(!result.matches(Source::RabbitMq, &mq("Error: no")));
        let ip = set(&[json!({"data": {"IPAddress": [{"cidr": "203.0.113.0/24"}]}})]);
        assert!(ip.matches(Source::ActiveMq, &mq(r#"{"IPAddress": "203.0.113.254"}"#)));
        assert!(!ip.matches(Source::ActiveMq, &mq(r#"{"IPAddress": "198.51.100.1"}"#)));
    }

    /// The operator table of Lambda's "Filter rule syntax", each with a record that matches and
    /// one that does not.
    #[test]
    fn lambda_documented_operators() {
        for (rule, yes, no) in [
            (
                json!({"UserID": [null]}),
                json!({"UserID": null}),
                json!({"UserID": "u"}),
            ),
            (
                json!({"LastName": [""]}),
                json!({"LastName": ""}),
                json!({"LastName": "x"}),
            ),
            (
                json!({"Name": ["Alice"]}),
                json!({"Name": "Alice"}),
                json!({"Name": "alice"}),
            ),
            (
                json!({"Name": [{"equals-ignore-case": "alice"}]}),
                json!({"Name": "ALICE"}),
                json!({"Name": "Bob"}),
            ),
            (
                json!({"Location": ["New York"], "Day": ["Monday"]}),
                json!({"Location": "New York", "Day": "Monday"}),
                json!({"Location": "New York", "Day": "Tuesday"}),
            ),
            (
                json!({"PaymentType": ["Credit", "Debit"]}),
                json!({"PaymentType": "Debit"}),
                json!({"PaymentType": "Cash"}),
            ),
            (
                json!({"$or": [{"Location": ["New York"]}, {"Day": ["Monday"]}]}),
                json!({"Location": "Boston", "Day": "Monday"}),
                json!({"Location": "Boston", "Day": "Friday"}),
            ),
            (
                json!({"Weather": [{"anything-but": ["Raining"]}]}),
                json!({"Weather": "Sunny"}),
                json!({"Weather": "Raining"}),
            ),
            (
                json!({"Price": [{"numeric": ["=", 100]}]}),
                json!({"Price": 100.0}),
                json!({"Price": 101}),
            ),
            (
                json!({"Price": [{"numeric": [">", 10, "<=", 20]}]}),
                json!({"Price": 20}),
                json!({"Price": 10}),
            ),
            (
                json!({"ProductName": [{"exists": true}]}),
                json!({"ProductName": "p"}),
                json!({"Other": "p"}),
            ),
            (
                json!({"ProductName": [{"exists": false}]}),
                json!({"Other": "p"}),
                json!({"ProductName": "p"}),
            ),
            (
                json!({"Region": [{"prefix": "us-"}]}),
                json!({"Region": "us-east-1"}),
                json!({"Region": "eu-west-1"}),
            ),
            (
                json!({"Region": [{"prefix": {"equals-ignore-case": "US-"}}]}),
                json!({"Region": "us-east-1"}),
                json!({"Region": "eu-west-1"}),
            ),
            (
                json!({"FileName": [{"suffix": ".png"}]}),
                json!({"FileName": "image.png"}),
                json!({"FileName": "image.PNG"}),
            ),
            (
                json!({"FileName": [{"suffix": {"equals-ignore-case": ".png"}}]}),
                json!({"FileName": "image.PNG"}),
                json!({"FileName": "image.jpg"}),
            ),
            (
                json!({"FileName": [{"wildcard": "*.png"}]}),
                json!({"FileName": "dir/image.png"}),
                json!({"FileName": "image.jpg"}),
            ),
            (
                json!({"FileName": [{"anything-but": {"suffix": ".txt"}}]}),
                json!({"FileName": "file.txt.bak"}),
                json!({"FileName": "file.txt"}),
            ),
            (
                json!({"FilePath": [{"anything-but": {"wildcard": "*/init/*"}}]}),
                json!({"FilePath": "dir/post/file"}),
                json!({"FilePath": "dir/init/file"}),
            ),
            (
                json!({"state": [{"anything-but": {"prefix": ["init", "post"]}}]}),
                json!({"state": "pending"}),
                json!({"state": "post-init"}),
            ),
            (
                json!({"state": [{"anything-but": {"equals-ignore-case": ["stopped"]}}]}),
                json!({"state": "pending"}),
                json!({"state": "Stopped"}),
            ),
            (
                json!({"sourceIPAddress": [{"cidr": "10.0.0.0/24"}]}),
                json!({"sourceIPAddress": "10.0.0.255"}),
                json!({"sourceIPAddress": "10.0.0.256"}),
            ),
            (
                json!({"sourceIPAddress": [{"cidr": "2001:db8:1234:1a00::/64"}]}),
                json!({"sourceIPAddress": "2001:0db8:1234:1a00:0000:0000:0000:0000"}),
                json!({"sourceIPAddress": "2001:db8:123f:1a01::"}),
            ),
            (
                json!({"number": [300]}),
                json!({"number": 3.0e2}),
                json!({"number": "300"}),
            ),
            (
                json!({"boolean": [false]}),
                json!({"boolean": false}),
                json!({"boolean": true}),
            ),
        ] {
            let s = set(&[json!({"body": rule})]);
            assert!(
                s.matches(Source::Sqs, &sqs(&yes.to_string())),
                "{rule} should match {yes}"
            );
            assert!(
                !s.matches(Source::Sqs, &sqs(&no.to_string())),
                "{rule} should not match {no}"
            );
        }
    }
}
