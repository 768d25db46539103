//! The targets Flint delivers to, named by ARN as in `DestinationConfig` and
//! `DeadLetterConfig`: `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`.

use crate::ConnectorError;

/// What kind of thing an ARN names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Lambda,
    Sqs,
    Sns,
    EventBus,
    S3,
}

/// A parsed target ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetArn {
    pub arn: String,
    pub target: Target,
    pub region: String,
    pub account: String,
    /// The queue, topic or bucket name; for an event bus its name; for a function
    /// `function:NAME[:QUALIFIER]`.
    pub resource: String,
}

impl TargetArn {
    pub fn parse(arn: &str) -> Result<Self, ConnectorError> {
        let unsupported = || ConnectorError::UnsupportedTarget(arn.to_string());
        let mut parts = arn.splitn(6, ':');
        let (Some("arn"), Some(_partition), Some(service), Some(region), Some(account), Some(rest)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(unsupported());
        };
        let (target, resource) = match service {
            "lambda" if rest.starts_with("function:") => (Target::Lambda, rest.to_string()),
            "sqs" => (Target::Sqs, rest.to_string()),
            "sns" => (Target::Sns, rest.to_string()),
            "events" => match rest.strip_prefix("event-bus/") {
                Some(name) => (Target::EventBus, name.to_string()),
                None => return Err(unsupported()),
            },
            "s3" => (Target::S3, rest.to_string()),
            _ => return Err(unsupported()),
        };
        if resource.is_empty() {
            return Err(unsupported());
        }
        Ok(Self {
            arn: arn.to_string(),
            target,
            region: region.to_string(),
            account: account.to_string(),
            resource,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_destination_kind_parses_from_its_arn() -> Result<(), ConnectorError> {
        let q = TargetArn::parse("arn:aws:sqs:eu-west-1:111111111111:failures")?;
        assert_eq!(
            (
                q.target,
                q.region.as_str(),
                q.account.as_str(),
                q.resource.as_str()
            ),
            (Target::Sqs, "eu-west-1", "111111111111", "failures")
        );
        let b = TargetArn::parse("arn:aws:events:us-east-1:111111111111:event-bus/default")?;
        assert_eq!(
            (b.target, b.resource.as_str()),
            (Target::EventBus, "default")
        );
        let s3 = TargetArn::parse("arn:aws:s3:::my-bucket")?;
        assert_eq!(
            (s3.target, s3.region.as_str(), s3.resource.as_str()),
            (Target::S3, "", "my-bucket")
        );
        let f = TargetArn::parse("arn:aws:lambda:us-east-1:111111111111:function:f:live")?;
        assert_eq!(
            (f.target, f.resource.as_str()),
            (Target::Lambda, "function:f:live")
        );
        assert_eq!(
            TargetArn::parse("arn:aws:sns:us-east-1:111111111111:topic")?.target,
            Target::Sns
        );
        for bad in [
            "",
            "arn:aws:iam::1:role/x",
            "arn:aws:events:r:1:rule/x",
            "arn:aws:sqs:r:1:",
        ] {
            assert!(TargetArn::parse(bad).is_err(), "{bad}");
        }
        Ok(())
    }
}
