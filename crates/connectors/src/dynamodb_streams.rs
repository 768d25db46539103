//! Reading a DynamoDB stream: its shards, shard iterators and records, for the DynamoDB Streams
//! event source poller. Records come back with their attribute values in DynamoDB's JSON
//! (`{"S": "…"}`, `{"N": "…"}`, `{"B": "<base64>"}`, …), as Lambda's event carries them.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodbstreams::types::{AttributeValue, ShardIteratorType};
use base64::Engine as _;
use serde_json::{json, Map, Value};

use crate::streams::{region_of, sdk_error, IteratorStart, Page, Shard, StreamError};
use crate::{ConnectorError, Connectors};

/// One DynamoDB stream record, as GetRecords returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct DynamoDbStreamRecord {
    pub event_id: String,
    /// INSERT, MODIFY or REMOVE.
    pub event_name: String,
    pub aws_region: String,
    /// `dynamodb`: ApproximateCreationDateTime, Keys, NewImage, OldImage, SequenceNumber,
    /// SizeBytes, StreamViewType (in that order, the ones present).
    pub dynamodb: Value,
    /// `userIdentity` (TTL deletions: `{"principalId": "dynamodb.amazonaws.com", "type": "Service"}`).
    pub user_identity: Option<Value>,
    pub sequence_number: String,
    /// `ApproximateCreationDateTime`, epoch seconds.
    pub created: f64,
    /// The item's key as JSON text (records of one item stay in order under
    /// `ParallelizationFactor`).
    pub key: String,
}

/// An attribute value in DynamoDB's JSON.
pub fn attribute_json(v: &AttributeValue) -> Value {
    let b64 = |b: &[u8]| Value::String(base64::engine::general_purpose::STANDARD.encode(b));
    match v {
        AttributeValue::S(s) => json!({ "S": s }),
        AttributeValue::N(n) => json!({ "N": n }),
        AttributeValue::B(b) => json!({ "B": b64(b.as_ref()) }),
        AttributeValue::Bool(b) => json!({ "BOOL": b }),
        AttributeValue::Null(b) => json!({ "NULL": b }),
        AttributeValue::Ss(ss) => json!({ "SS": ss }),
        AttributeValue::Ns(ns) => json!({ "NS": ns }),
        AttributeValue::Bs(bs) => {
            json!({ "BS": bs.iter().map(|b| b64(b.as_ref())).collect::<Vec<_>>() })
        }
        AttributeValue::L(l) => json!({ "L": l.iter().map(attribute_json).collect::<Vec<_>>() }),
        AttributeValue::M(m) => json!({ "M": item_json(m) }),
        // A type newer than this SDK: kept visible rather than dropped.
        _ => json!({}),
    }
}

/// An item (or key) in DynamoDB's JSON, attributes by name.
pub fn item_json(item: &HashMap<String, AttributeValue>) -> Value {
    let sorted: BTreeMap<&String, Value> =
        item.iter().map(|(k, v)| (k, attribute_json(v))).collect();
    Value::Object(
        sorted
            .into_iter()
            .map(|(k, v)| (k.clone(), v))
            .collect::<Map<_, _>>(),
    )
}

fn record_of(r: aws_sdk_dynamodbstreams::types::Record) -> DynamoDbStreamRecord {
    let s = r
        .dynamodb
        .unwrap_or_else(|| aws_sdk_dynamodbstreams::types::StreamRecord::builder().build());
    let created = s
        .approximate_creation_date_time
        .map(|t| t.as_secs_f64())
        .unwrap_or_default();
    let sequence_number = s.sequence_number.clone().unwrap_or_default();
    let keys = s.keys.as_ref().map(item_json).unwrap_or_else(|| json!({}));
    let mut dynamodb = Map::new();
    dynamodb.insert("ApproximateCreationDateTime".into(), json!(created));
    dynamodb.insert("Keys".into(), keys.clone());
    if let Some(image) = &s.new_image {
        dynamodb.insert("NewImage".into(), item_json(image));
    }
    if let Some(image) = &s.old_image {
        dynamodb.insert("OldImage".into(), item_json(image));
    }
    dynamodb.insert("SequenceNumber".into(), json!(sequence_number));
    if let Some(size) = s.size_bytes {
        dynamodb.insert("SizeBytes".into(), json!(size));
    }
    if let Some(view) = &s.stream_view_type {
        dynamodb.insert("StreamViewType".into(), json!(view.as_str()));
    }
    DynamoDbStreamRecord {
        event_id: r.event_id.unwrap_or_default(),
        event_name: r
            .event_name
            .map(|n| n.as_str().to_string())
            .unwrap_or_default(),
        aws_region: r.aws_region.unwrap_or_default(),
        dynamodb: Value::Object(dynamodb),
        user_identity: r
            .user_identity
            .map(|i| json!({ "principalId": i.principal_id, "type": i.r#type })),
        sequence_number,
        created,
        key: keys.to_string(),
    }
}

impl Connectors {
    fn dynamodb_streams(&self, stream_arn: &str) -> aws_sdk_dynamodbstreams::Client {
        let conf = aws_sdk_dynamodbstreams::config::Builder::from(&self.config)
            .region(self.region(region_of(stream_arn)))
            .build();
        aws_sdk_dynamodbstreams::Client::from_conf(conf)
    }

    /// Every shard of the stream (DescribeStream, all pages).
    pub async fn dynamodb_stream_shards(
        &self,
        stream_arn: &str,
    ) -> Result<Vec<Shard>, StreamError> {
        let client = self.dynamodb_streams(stream_arn);
        let mut shards = Vec::new();
        let mut start: Option<String> = None;
        loop {
            let out = client
                .describe_stream()
                .stream_arn(stream_arn)
                .set_exclusive_start_shard_id(start.clone())
                .send()
                .await
                .map_err(|e| sdk_error("DynamoDB Streams", "DescribeStream", stream_arn, e))?;
            let Some(description) = out.stream_description else {
                return Ok(shards);
            };
            for s in description.shards.unwrap_or_default() {
                let Some(id) = s.shard_id else { continue };
                shards.push(Shard {
                    closed: s
                        .sequence_number_range
                        .as_ref()
                        .is_some_and(|r| r.ending_sequence_number.is_some()),
                    id,
                    parent: s.parent_shard_id,
                    adjacent_parent: None,
                });
            }
            match description.last_evaluated_shard_id {
                Some(last) if Some(&last) != start.as_ref() => start = Some(last),
                _ => return Ok(shards),
            }
        }
    }

    /// A shard iterator (GetShardIterator). DynamoDB Streams has no AT_TIMESTAMP.
    pub async fn dynamodb_stream_iterator(
        &self,
        stream_arn: &str,
        shard_id: &str,
        start: &IteratorStart,
    ) -> Result<String, StreamError> {
        let mut call = self
            .dynamodb_streams(stream_arn)
            .get_shard_iterator()
            .stream_arn(stream_arn)
            .shard_id(shard_id);
        call = match start {
            IteratorStart::TrimHorizon | IteratorStart::AtTimestamp(_) => {
                call.shard_iterator_type(ShardIteratorType::TrimHorizon)
            }
            IteratorStart::Latest => call.shard_iterator_type(ShardIteratorType::Latest),
            IteratorStart::AfterSequence(seq) => call
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .sequence_number(seq),
        };
        let out = call
            .send()
            .await
            .map_err(|e| sdk_error("DynamoDB Streams", "GetShardIterator", stream_arn, e))?;
        out.shard_iterator.ok_or_else(|| {
            StreamError::Other(ConnectorError::Call {
                service: "DynamoDB Streams",
                operation: "GetShardIterator",
                target: stream_arn.to_string(),
                message: "no ShardIterator in the answer".into(),
            })
        })
    }

    /// Up to `limit` records (at most 1,000, DynamoDB's limit) from `iterator` (GetRecords).
    pub async fn dynamodb_stream_records(
        &self,
        stream_arn: &str,
        iterator: &str,
        limit: i32,
    ) -> Result<Page<DynamoDbStreamRecord>, StreamError> {
        let out = self
            .dynamodb_streams(stream_arn)
            .get_records()
            .shard_iterator(iterator)
            .limit(limit.clamp(1, 1000))
            .send()
            .await
            .map_err(|e| sdk_error("DynamoDB Streams", "GetRecords", stream_arn, e))?;
        Ok(Page {
            records: out
                .records
                .unwrap_or_default()
                .into_iter()
                .map(record_of)
                .collect(),
            next_iterator: out.next_shard_iterator,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodbstreams::primitives::{Blob, DateTime};
    use aws_sdk_dynamodbstreams::types::{OperationType, StreamRecord, StreamViewType};

    #[test]
    fn attribute_values_become_dynamodb_json() {
        let item = HashMap::from([
            ("s".to_string(), AttributeValue::S("x".into())),
            ("n".to_string(), AttributeValue::N("1.5".into())),
            (
                "b".to_string(),
                AttributeValue::B(Blob::new(b"foobar".to_vec())),
            ),
            ("t".to_string(), AttributeValue::Bool(true)),
            ("z".to_string(), AttributeValue::Null(true)),
            (
                "l".to_string(),
                AttributeValue::L(vec![AttributeValue::Ss(vec!["a".into()])]),
            ),
            (
                "m".to_string(),
                AttributeValue::M(HashMap::from([(
                    "k".to_string(),
                    AttributeValue::Ns(vec!["2".into()]),
                )])),
            ),
        ]);
        assert_eq!(
            item_json(&item),
            json!({"b": {"B": "Zm9vYmFy"}, "l": {"L": [{"SS": ["a"]}]},
                   "m": {"M": {"k": {"NS": ["2"]}}}, "n": {"N": "1.5"}, "s": {"S": "x"},
                   "t": {"BOOL": true}, "z": {"NULL": true}})
        );
    }

    #[test]
    fn a_stream_record_keeps_awss_members_in_order() {
        let keys = HashMap::from([("id".to_string(), AttributeValue::S("a".into()))]);
        let r = aws_sdk_dynamodbstreams::types::Record::builder()
            .event_id("e1")
            .event_name(OperationType::Insert)
            .aws_region("us-east-1")
            .dynamodb(
                StreamRecord::builder()
                    .approximate_creation_date_time(DateTime::from_secs(1_700_000_000))
                    .set_keys(Some(keys.clone()))
                    .set_new_image(Some(keys))
                    .sequence_number("100")
                    .size_bytes(20)
                    .stream_view_type(StreamViewType::NewImage)
                    .build(),
            )
            .build();
        let r = record_of(r);
        assert_eq!(r.sequence_number, "100");
        assert_eq!(r.event_name, "INSERT");
        assert_eq!(r.key, r#"{"id":{"S":"a"}}"#);
        let members: Vec<&String> = r
            .dynamodb
            .as_object()
            .map(|o| o.keys().collect())
            .unwrap_or_default();
        assert_eq!(
            members,
            [
                "ApproximateCreationDateTime",
                "Keys",
                "NewImage",
                "SequenceNumber",
                "SizeBytes",
                "StreamViewType"
            ]
        );
        assert_eq!(
            r.dynamodb["ApproximateCreationDateTime"],
            json!(1_700_000_000.0)
        );
    }
}
