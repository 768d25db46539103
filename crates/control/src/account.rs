//! GetAccountSettings: Lambda's account quotas and what the caller's account uses of them.

use serde::{Deserialize, Serialize};

use crate::code::{MAX_UNZIPPED_SIZE, MAX_ZIPPED_SIZE};
use crate::{ControlPlane, LambdaError, Scope};

/// AWS's default quota on the total size of all code (functions and layers) in a region.
pub const TOTAL_CODE_SIZE: u64 = 80_530_636_800;

#[derive(Debug, Deserialize)]
pub struct GetAccountSettingsInput {}

#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct GetAccountSettingsOutput {
    pub account_limit: AccountLimit,
    pub account_usage: AccountUsage,
}

#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct AccountLimit {
    pub total_code_size: u64,
    pub code_size_unzipped: u64,
    pub code_size_zipped: u64,
    pub concurrent_executions: u32,
    pub unreserved_concurrent_executions: u32,
}

#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct AccountUsage {
    pub total_code_size: u64,
    pub function_count: u64,
}

pub async fn get_account_settings(
    cp: &ControlPlane,
    scope: &Scope,
    _input: GetAccountSettingsInput,
) -> Result<GetAccountSettingsOutput, LambdaError> {
    let functions = cp.index.list(scope);
    let concurrency = cp.options.read().account_concurrency;
    Ok(GetAccountSettingsOutput {
        account_limit: AccountLimit {
            total_code_size: TOTAL_CODE_SIZE,
            code_size_unzipped: MAX_UNZIPPED_SIZE,
            code_size_zipped: MAX_ZIPPED_SIZE,
            concurrent_executions: concurrency,
            // Reservations and the provisioned concurrency of unreserved functions.
            unreserved_concurrent_executions: crate::concurrency::unreserved(cp, scope),
        },
        account_usage: AccountUsage {
            // Like AWS: every function version's zip plus every layer version's zip.
            total_code_size: functions.iter().map(|f| f.code_size()).sum::<u64>()
                + cp.layers.total_code_size(scope),
            function_count: functions.len() as u64,
        },
    })
}
