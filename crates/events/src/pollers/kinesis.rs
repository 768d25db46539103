//! The Kinesis event source: reads a data stream's shards (see [`super::stream`]) and invokes
//! the function with AWS's Kinesis event (`Records[].kinesis` with base64 `data`).

use flint_connectors::KinesisRecord;
use serde_json::{json, Value};

use super::stream::{self, StreamKind};
use super::Mapping;

pub(crate) async fn run(mapping: Mapping) {
    stream::run(mapping, StreamKind::Kinesis).await;
}

/// `invokeIdentityArn`: the function's execution role on AWS.
// Flint's FunctionSpec does not carry the role (yet): the account's conventional Lambda role
// stands in for it, shaped as AWS's.
pub(crate) fn invoke_identity_arn(mapping: &Mapping) -> String {
    format!(
        "arn:aws:iam::{}:role/service-role/lambda-role",
        mapping.spec.scope.account
    )
}

/// One member of the event's `Records`, members in AWS's order.
pub(crate) fn event_record(
    r: &KinesisRecord,
    shard: &str,
    stream_arn: &str,
    region: &str,
    identity: &str,
) -> Value {
    // AWS gives the arrival time in seconds with millisecond precision.
    let arrival = (r.arrival * 1000.0).round() / 1000.0;
    json!({
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": r.partition_key,
            "sequenceNumber": r.sequence_number,
            "data": stream::base64(&r.data),
            "approximateArrivalTimestamp": arrival,
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": format!("{shard}:{}", r.sequence_number),
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": identity,
        "awsRegion": region,
        "eventSourceARN": stream_arn,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kinesis_record_has_awss_shape() {
        let r = KinesisRecord {
            sequence_number: "4959".into(),
            partition_key: "test_0".into(),
            data: b"hello".to_vec(),
            arrival: 1_700_000_000.123_4,
        };
        let arn = "arn:aws:kinesis:us-east-1:000000000000:stream/s";
        let e = event_record(
            &r,
            "shardId-000000000000",
            arn,
            "us-east-1",
            "arn:aws:iam::000000000000:role/r",
        );
        assert_eq!(
            e,
            json!({
                "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": "test_0",
                    "sequenceNumber": "4959", "data": "aGVsbG8=",
                    "approximateArrivalTimestamp": 1_700_000_000.123},
                "eventSource": "aws:kinesis", "eventVersion": "1.0",
                "eventID": "shardId-000000000000:4959", "eventName": "aws:kinesis:record",
                "invokeIdentityArn": "arn:aws:iam::000000000000:role/r", "awsRegion": "us-east-1",
                "eventSourceARN": arn,
            })
        );
        let members: Vec<&String> = e
            .as_object()
            .map(|o| o.keys().collect())
            .unwrap_or_default();
        assert_eq!(members[0], "kinesis");
        assert_eq!(members[7], "eventSourceARN");
    }
}
