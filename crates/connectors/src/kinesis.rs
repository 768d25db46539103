//! Reading a Kinesis data stream: its shards, shard iterators and records, for the Kinesis
//! event source poller. Calls name the stream by ARN, so a stream of another account works as
//! on AWS.

use aws_sdk_kinesis::types::ShardIteratorType;

use crate::streams::{region_of, sdk_error, IteratorStart, Page, Shard, StreamError};
use crate::Connectors;

/// One Kinesis record, as GetRecords returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct KinesisRecord {
    pub sequence_number: String,
    pub partition_key: String,
    pub data: Vec<u8>,
    /// `ApproximateArrivalTimestamp`, epoch seconds.
    pub arrival: f64,
}

impl Connectors {
    fn kinesis(&self, stream_arn: &str) -> aws_sdk_kinesis::Client {
        let conf = aws_sdk_kinesis::config::Builder::from(&self.config)
            .region(self.region(region_of(stream_arn)))
            .build();
        aws_sdk_kinesis::Client::from_conf(conf)
    }

    /// Every shard of the stream, open and closed (ListShards, all pages).
    pub async fn kinesis_shards(&self, stream_arn: &str) -> Result<Vec<Shard>, StreamError> {
        let client = self.kinesis(stream_arn);
        let mut shards = Vec::new();
        let mut token: Option<String> = None;
        loop {
            // A follow-up page is asked for by its token alone (naming the stream is refused).
            let call = match &token {
                Some(t) => client.list_shards().next_token(t),
                None => client.list_shards().stream_arn(stream_arn),
            };
            let out = call
                .send()
                .await
                .map_err(|e| sdk_error("Kinesis", "ListShards", stream_arn, e))?;
            for s in out.shards.unwrap_or_default() {
                shards.push(Shard {
                    closed: s
                        .sequence_number_range
                        .as_ref()
                        .is_some_and(|r| r.ending_sequence_number.is_some()),
                    id: s.shard_id,
                    parent: s.parent_shard_id,
                    adjacent_parent: s.adjacent_parent_shard_id,
                });
            }
            match out.next_token {
                Some(t) if !t.is_empty() => token = Some(t),
                _ => return Ok(shards),
            }
        }
    }

    /// A shard iterator (GetShardIterator).
    pub async fn kinesis_iterator(
        &self,
        stream_arn: &str,
        shard_id: &str,
        start: &IteratorStart,
    ) -> Result<String, StreamError> {
        let mut call = self
            .kinesis(stream_arn)
            .get_shard_iterator()
            .stream_arn(stream_arn)
            .shard_id(shard_id);
        call = match start {
            IteratorStart::TrimHorizon => call.shard_iterator_type(ShardIteratorType::TrimHorizon),
            IteratorStart::Latest => call.shard_iterator_type(ShardIteratorType::Latest),
            IteratorStart::AtTimestamp(secs) => call
                .shard_iterator_type(ShardIteratorType::AtTimestamp)
                .timestamp(aws_sdk_kinesis::primitives::DateTime::from_secs_f64(*secs)),
            IteratorStart::AfterSequence(seq) => call
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .starting_sequence_number(seq),
        };
        let out = call
            .send()
            .await
            .map_err(|e| sdk_error("Kinesis", "GetShardIterator", stream_arn, e))?;
        out.shard_iterator.ok_or_else(|| {
            StreamError::Other(crate::ConnectorError::Call {
                service: "Kinesis",
                operation: "GetShardIterator",
                target: stream_arn.to_string(),
                message: "no ShardIterator in the answer".into(),
            })
        })
    }

    /// Up to `limit` records from `iterator` (GetRecords).
    pub async fn kinesis_records(
        &self,
        stream_arn: &str,
        iterator: &str,
        limit: i32,
    ) -> Result<Page<KinesisRecord>, StreamError> {
        let out = self
            .kinesis(stream_arn)
            .get_records()
            .stream_arn(stream_arn)
            .shard_iterator(iterator)
            .limit(limit)
            .send()
            .await
            .map_err(|e| sdk_error("Kinesis", "GetRecords", stream_arn, e))?;
        let records = out
            .records
            .into_iter()
            .map(|r| KinesisRecord {
                arrival: r
                    .approximate_arrival_timestamp
                    .map(|t| t.as_secs_f64())
                    .unwrap_or_default(),
                sequence_number: r.sequence_number,
                partition_key: r.partition_key.unwrap_or_default(),
                data: r.data.into_inner(),
            })
            .collect();
        Ok(Page {
            records,
            next_iterator: out.next_shard_iterator,
        })
    }
}
