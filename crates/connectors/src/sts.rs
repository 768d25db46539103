//! A function's execution role, assumed through STS (`flint serve --function-credentials
//! assume-role`): each execution environment runs with its own session of the role, as on AWS.

use crate::{call_error, ConnectorError, Connectors};

pub use flint_spec::RoleSession;

impl Connectors {
    /// `AssumeRole` of `role_arn` as `session_name`, asked of STS in `region` (the function's).
    pub async fn assume_role(
        &self,
        role_arn: &str,
        session_name: &str,
        region: &str,
    ) -> Result<RoleSession, ConnectorError> {
        let conf = aws_sdk_sts::config::Builder::from(&self.config)
            .region(self.region(region))
            .build();
        let out = aws_sdk_sts::Client::from_conf(conf)
            .assume_role()
            .role_arn(role_arn)
            .role_session_name(session_name)
            .send()
            .await
            .map_err(|e| call_error("STS", "AssumeRole", role_arn, e))?;
        let Some(creds) = out.credentials else {
            return Err(ConnectorError::Call {
                service: "STS",
                operation: "AssumeRole",
                target: role_arn.to_string(),
                message: "no Credentials in the answer".into(),
            });
        };
        Ok(RoleSession {
            expiration: std::time::SystemTime::try_from(creds.expiration).ok(),
            access_key_id: creds.access_key_id,
            secret_access_key: creds.secret_access_key,
            session_token: creds.session_token,
        })
    }
}
