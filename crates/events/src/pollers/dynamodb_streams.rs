//! The DynamoDB Streams event source: reads a table's stream shards (see [`super::stream`])
//! and invokes the function with AWS's DynamoDB event (`Records[].dynamodb` with the keys and
//! images in DynamoDB's JSON).

use flint_connectors::DynamoDbStreamRecord;
use serde_json::{Map, Value};

use super::stream::{self, StreamKind};
use super::Mapping;

pub(crate) async fn run(mapping: Mapping) {
    stream::run(mapping, StreamKind::DynamoDb).await;
}

/// One member of the event's `Records`, members in AWS's order. Lambda's DynamoDB events are
/// `eventVersion` 1.1 whatever the stream record says.
pub(crate) fn event_record(r: &DynamoDbStreamRecord, stream_arn: &str) -> Value {
    let mut e = Map::new();
    e.insert("eventID".into(), r.event_id.clone().into());
    e.insert("eventName".into(), r.event_name.clone().into());
    e.insert("eventVersion".into(), "1.1".into());
    e.insert("eventSource".into(), "aws:dynamodb".into());
    e.insert("awsRegion".into(), r.aws_region.clone().into());
    e.insert("dynamodb".into(), r.dynamodb.clone());
    if let Some(identity) = &r.user_identity {
        e.insert("userIdentity".into(), identity.clone());
    }
    e.insert("eventSourceARN".into(), stream_arn.into());
    Value::Object(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_dynamodb_record_has_awss_shape() {
        let r = DynamoDbStreamRecord {
            event_id: "e1".into(),
            event_name: "INSERT".into(),
            aws_region: "us-east-1".into(),
            dynamodb: json!({"Keys": {"id": {"S": "a"}}, "SequenceNumber": "100"}),
            user_identity: None,
            sequence_number: "100".into(),
            created: 1.0,
            key: "{}".into(),
        };
        let arn = "arn:aws:dynamodb:us-east-1:000000000000:table/t/stream/2024";
        let e = event_record(&r, arn);
        let members: Vec<&String> = e
            .as_object()
            .map(|o| o.keys().collect())
            .unwrap_or_default();
        assert_eq!(
            members,
            [
                "eventID",
                "eventName",
                "eventVersion",
                "eventSource",
                "awsRegion",
                "dynamodb",
                "eventSourceARN"
            ]
        );
        assert_eq!(e["eventVersion"], "1.1");
        assert_eq!(e["dynamodb"]["Keys"]["id"]["S"], "a");
    }
}
