//! Physical names as CloudFormation makes them (`<stack>-<LogicalId>-<SUFFIX>`, cut to the
//! service's limit), and the placeholders that stand for other services' resources.

use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::intrinsics::{Outputs, Resolver};

/// `<stack>-<logical>-<SUFFIX>` within `max` characters. The suffix is derived from the stack
/// and the logical id (not random, as CloudFormation's is) so every deploy of the stack finds
/// the same name.
pub fn physical_name(stack: &str, logical: &str, max: usize) -> String {
    let digest = Sha256::digest(format!("{stack}/{logical}").as_bytes());
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let suffix: String = digest
        .iter()
        .take(12)
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect();
    let room = max.saturating_sub(suffix.len() + 2);
    let (mut s, mut l) = (stack.chars().count(), logical.chars().count());
    while s + l > room {
        if s >= l {
            s -= 1;
        } else {
            l -= 1;
        }
    }
    let stack: String = stack.chars().take(s).collect();
    let logical: String = logical.chars().take(l).collect();
    format!("{stack}-{logical}-{suffix}")
}

/// What a resource of another service answers to `Ref`/`Fn::GetAtt` when Flint skips it: the
/// name its properties give or CloudFormation would generate, and the ARN that name has in
/// the stack's account and region (the resource itself is not created).
pub fn placeholder(r: &Resolver, logical: &str, kind: &str, props: &Value) -> Outputs {
    let (region, account) = (r.region.as_str(), r.account.as_str());
    let named = |key: &str, max: usize| -> String {
        props
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| physical_name(&r.stack_name, logical, max))
    };
    let mut out = Outputs::default();
    let mut attr = |k: &str, v: Value| {
        out.attributes.insert(k.to_string(), v);
    };
    let reference: Value = match kind {
        "AWS::SQS::Queue" => {
            let fifo = props
                .get("FifoQueue")
                .is_some_and(|v| v == true || v == "true");
            let name = match props.get("QueueName").and_then(Value::as_str) {
                Some(n) => n.to_string(),
                // CloudFormation's generated name of a FIFO queue keeps the `.fifo` suffix.
                None if fifo => format!("{}.fifo", physical_name(&r.stack_name, logical, 75)),
                None => named("QueueName", 80),
            };
            let arn = format!("arn:aws:sqs:{region}:{account}:{name}");
            let url = format!("https://sqs.{region}.amazonaws.com/{account}/{name}");
            attr("Arn", arn.into());
            attr("QueueName", name.into());
            attr("QueueUrl", url.clone().into());
            url.into()
        }
        "AWS::SNS::Topic" => {
            let name = named("TopicName", 256);
            let arn = format!("arn:aws:sns:{region}:{account}:{name}");
            attr("TopicArn", arn.clone().into());
            attr("TopicName", name.into());
            arn.into()
        }
        "AWS::DynamoDB::Table" => {
            let name = named("TableName", 255);
            let arn = format!("arn:aws:dynamodb:{region}:{account}:table/{name}");
            attr(
                "StreamArn",
                format!("{arn}/stream/1970-01-01T00:00:00.000").into(),
            );
            attr("Arn", arn.into());
            name.into()
        }
        "AWS::Kinesis::Stream" => {
            let name = named("Name", 128);
            attr(
                "Arn",
                format!("arn:aws:kinesis:{region}:{account}:stream/{name}").into(),
            );
            name.into()
        }
        "AWS::S3::Bucket" => {
            let name = named("BucketName", 63).to_lowercase();
            attr("Arn", format!("arn:aws:s3:::{name}").into());
            attr("DomainName", format!("{name}.s3.amazonaws.com").into());
            name.into()
        }
        "AWS::IAM::Role" => {
            let name = named("RoleName", 64);
            attr("Arn", format!("arn:aws:iam::{account}:role/{name}").into());
            name.into()
        }
        _ => {
            let service = kind.split("::").nth(1).unwrap_or("unknown").to_lowercase();
            let name = physical_name(&r.stack_name, logical, 64);
            attr(
                "Arn",
                format!("arn:aws:{service}:{region}:{account}:{name}").into(),
            );
            name.into()
        }
    };
    out.reference = reference;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn physical_names_are_stable_and_fit_the_limit() {
        let a = physical_name("app", "HelloFunction", 64);
        assert_eq!(a, physical_name("app", "HelloFunction", 64));
        assert!(a.starts_with("app-HelloFunction-") && a.len() == 30, "{a}");
        let long = physical_name(&"s".repeat(60), &"L".repeat(60), 64);
        assert_eq!(long.len(), 64);
        // Cut by characters, never inside one.
        let wide = physical_name("app", &"é".repeat(60), 64);
        assert_eq!(wide.chars().count(), 64);
    }

    #[test]
    fn a_skipped_queue_stands_for_its_arn_in_the_stacks_account() {
        let r = Resolver {
            region: "us-east-1".into(),
            account: "000000000000".into(),
            stack_name: "app".into(),
            ..Default::default()
        };
        let out = placeholder(&r, "Q", "AWS::SQS::Queue", &json!({"QueueName": "orders"}));
        assert_eq!(
            out.attributes["Arn"],
            "arn:aws:sqs:us-east-1:000000000000:orders"
        );
        assert_eq!(
            out.reference,
            "https://sqs.us-east-1.amazonaws.com/000000000000/orders"
        );
    }
}
