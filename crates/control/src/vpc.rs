//! The subnets and security groups of a function's `VpcConfig`, asked of EC2 as Lambda asks at
//! CreateFunction and UpdateFunctionConfiguration (recorded: "Error occurred while
//! DescribeSubnets. EC2 Error Code: InvalidSubnetID.NotFound. ..."), and the VPC they are in,
//! which the configuration reports as `VpcId`. Flint asks through its outbound connection (the
//! connectors crate), a [`VpcLookup`] the server plugs in. Without one, or when EC2 does not
//! answer, the configuration is kept with an empty `VpcId` (Flint's functions do not join the
//! VPC either way: README).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::configuration::VpcConfig;
use crate::{ControlPlane, LambdaError};

/// Why EC2 gave no VPC for a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VpcLookupError {
    /// EC2 refused `operation` with its own error code and message.
    Refused {
        operation: &'static str,
        code: String,
        message: String,
    },
    /// EC2 did not answer; the text says which endpoint and why.
    Unreachable(String),
}

/// A boxed future of [`VpcLookup`]: the subnets' VPC.
pub type VpcFuture<'a> = Pin<Box<dyn Future<Output = Result<String, VpcLookupError>> + Send + 'a>>;

/// Asks EC2 about a configuration's security groups, then its subnets.
pub trait VpcLookup: Send + Sync {
    fn vpc_of<'a>(
        &'a self,
        region: &'a str,
        subnet_ids: &'a [String],
        security_group_ids: &'a [String],
    ) -> VpcFuture<'a>;
}

impl ControlPlane {
    /// Plugs in Flint's connection to EC2.
    pub fn set_vpc_lookup(&self, lookup: Arc<dyn VpcLookup>) {
        *self.vpc_lookup.write() = Some(lookup);
    }

    /// The VPC of `config`'s subnets, or AWS's refusal of the configuration. Empty lists (a
    /// function leaving its VPC) ask nothing.
    pub(crate) async fn vpc_of(
        &self,
        region: &str,
        config: &VpcConfig,
    ) -> Result<String, LambdaError> {
        if config.subnet_ids.is_empty() && config.security_group_ids.is_empty() {
            return Ok(String::new());
        }
        let Some(lookup) = self.vpc_lookup.read().clone() else {
            return Ok(String::new());
        };
        match lookup
            .vpc_of(region, &config.subnet_ids, &config.security_group_ids)
            .await
        {
            Ok(vpc) => Ok(vpc),
            Err(VpcLookupError::Refused {
                operation,
                code,
                message,
            }) => Err(refusal(operation, &code, &message)),
            Err(VpcLookupError::Unreachable(why)) => {
                tracing::warn!(
                    "VpcConfig kept without a VpcId: EC2 could not be asked about its subnets \
                     and security groups ({why})"
                );
                Ok(String::new())
            }
        }
    }
}

/// AWS's words for a configuration EC2 refused.
fn refusal(operation: &str, code: &str, message: &str) -> LambdaError {
    LambdaError::invalid(format!(
        "Error occurred while {operation}. EC2 Error Code: {code}. EC2 Error Message: {message}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_worded_as_aws_words_them() {
        let e = refusal(
            "DescribeSubnets",
            "InvalidSubnetID.NotFound",
            "The subnet ID 'subnet-1' does not exist",
        );
        assert_eq!(
            e.message,
            "Error occurred while DescribeSubnets. EC2 Error Code: InvalidSubnetID.NotFound. \
             EC2 Error Message: The subnet ID 'subnet-1' does not exist"
        );
        assert_eq!(e.code, crate::ErrorCode::InvalidParameterValueException);
    }
}
