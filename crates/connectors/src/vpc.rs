//! A function's `VpcConfig` asked of EC2, as Lambda asks it: the security groups first
//! (DescribeSecurityGroups), then the subnets (DescribeSubnets), whose VPC is the
//! configuration's `VpcId`.

use crate::probe::{classify, within_probe_timeout, Answer};
use crate::Connectors;

/// Why EC2 gave no VPC.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VpcProblem {
    /// EC2 refused the call (a subnet or security group that does not exist, say).
    #[error("EC2 {operation}: {code}: {message}")]
    Refused {
        operation: &'static str,
        code: String,
        message: String,
    },
    /// No answer: nothing listens at the endpoint, no credentials, a timeout.
    #[error("EC2 at {endpoint} did not answer: {why}")]
    Unreachable { endpoint: String, why: String },
}

impl Connectors {
    /// The VPC of `subnet_ids`, once EC2 has confirmed that `security_group_ids` and
    /// `subnet_ids` exist in `region`.
    pub async fn vpc_of(
        &self,
        region: &str,
        subnet_ids: &[String],
        security_group_ids: &[String],
    ) -> Result<String, VpcProblem> {
        let conf = aws_sdk_ec2::config::Builder::from(&self.config)
            .region(self.region(region))
            .build();
        let ec2 = aws_sdk_ec2::Client::from_conf(conf);
        let call = async {
            if !security_group_ids.is_empty() {
                ec2.describe_security_groups()
                    .set_group_ids(Some(security_group_ids.to_vec()))
                    .send()
                    .await
                    .map_err(|e| classify(e, "DescribeSecurityGroups"))?;
            }
            if subnet_ids.is_empty() {
                return Ok(String::new());
            }
            let out = ec2
                .describe_subnets()
                .set_subnet_ids(Some(subnet_ids.to_vec()))
                .send()
                .await
                .map_err(|e| classify(e, "DescribeSubnets"))?;
            Ok(out
                .subnets()
                .iter()
                .find_map(|s| s.vpc_id().map(str::to_string))
                .unwrap_or_default())
        };
        within_probe_timeout(call).await.map_err(|a| match a {
            Answer::Service {
                operation,
                code,
                message,
            } => VpcProblem::Refused {
                operation,
                code,
                message,
            },
            Answer::Silent(why) => VpcProblem::Unreachable {
                endpoint: self.endpoint_named("EC2"),
                why,
            },
        })
    }
}
