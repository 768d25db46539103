//! A function version's `State` and `LastUpdateStatus` state machine: `Pending` after create (or
//! publish) until the code is in place, then `Active`; `InProgress` after an update until it is
//! applied, then `Successful`. Transitions to the settled states run in the background shortly
//! after the change (see `ControlPlane::schedule_settle`).

use serde::{Deserialize, Serialize};

use crate::LambdaError;

/// AWS's reason while a function is being created — also what it reports during updates.
const CREATING_REASON: &str = "The function is being created.";
const CREATING_CODE: &str = "Creating";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum State {
    Pending,
    Active,
    Inactive,
    Failed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "Pending",
            State::Active => "Active",
            State::Inactive => "Inactive",
            State::Failed => "Failed",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LastUpdateStatus {
    InProgress,
    Successful,
    Failed,
}

impl LastUpdateStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            LastUpdateStatus::InProgress => "InProgress",
            LastUpdateStatus::Successful => "Successful",
            LastUpdateStatus::Failed => "Failed",
        }
    }
}

/// Where a version stands, with the reasons AWS shows next to each status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Status {
    pub state: State,
    pub state_reason: Option<String>,
    pub state_reason_code: Option<String>,
    /// None until the first create has settled (AWS omits `LastUpdateStatus` while Pending).
    pub last_update: Option<LastUpdateStatus>,
    pub last_update_reason: Option<String>,
    pub last_update_reason_code: Option<String>,
}

impl Status {
    /// Just created (or published): Pending, no update status yet.
    pub fn creating() -> Self {
        Self {
            state: State::Pending,
            state_reason: Some(CREATING_REASON.into()),
            state_reason_code: Some(CREATING_CODE.into()),
            last_update: None,
            last_update_reason: None,
            last_update_reason_code: None,
        }
    }

    /// Just updated: the state stays, the update is in progress.
    pub fn updating(&self) -> Self {
        Self {
            last_update: Some(LastUpdateStatus::InProgress),
            last_update_reason: Some(CREATING_REASON.into()),
            last_update_reason_code: Some(CREATING_CODE.into()),
            ..self.clone()
        }
    }

    /// The change is applied: Active and Successful.
    pub fn settled() -> Self {
        Self {
            state: State::Active,
            state_reason: None,
            state_reason_code: None,
            last_update: Some(LastUpdateStatus::Successful),
            last_update_reason: None,
            last_update_reason_code: None,
        }
    }

    /// The change could not be applied (an image that could not be pulled): a create leaves
    /// the version `Failed`, an update leaves `LastUpdateStatus: Failed`, with AWS's reason code.
    pub fn failed(&self, reason_code: &str, reason: String) -> Self {
        if self.state == State::Pending {
            Self {
                state: State::Failed,
                state_reason: Some(reason),
                state_reason_code: Some(reason_code.into()),
                last_update: Some(LastUpdateStatus::Failed),
                last_update_reason: None,
                last_update_reason_code: None,
            }
        } else {
            Self {
                last_update: Some(LastUpdateStatus::Failed),
                last_update_reason: Some(reason),
                last_update_reason_code: Some(reason_code.into()),
                ..self.clone()
            }
        }
    }

    pub fn is_settled(&self) -> bool {
        self.state != State::Pending && self.last_update != Some(LastUpdateStatus::InProgress)
    }

    /// May the function be updated now? AWS refuses while a create or an update is running.
    pub fn check_updatable(&self, function_arn: &str) -> Result<(), LambdaError> {
        if self.state == State::Pending {
            return Err(LambdaError::function_in_state(self.state.as_str()));
        }
        if self.last_update == Some(LastUpdateStatus::InProgress) {
            return Err(LambdaError::update_in_progress(function_arn));
        }
        Ok(())
    }

    /// May the version be invoked now?
    pub fn check_invocable(&self) -> Result<(), LambdaError> {
        match self.state {
            State::Active => Ok(()),
            other => Err(LambdaError::function_in_state(other.as_str())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    #[test]
    fn create_then_settle_is_pending_then_active_successful() {
        let s = Status::creating();
        assert_eq!(s.state, State::Pending);
        assert_eq!(s.state_reason_code.as_deref(), Some("Creating"));
        assert_eq!(s.last_update, None);
        assert!(!s.is_settled());
        let s = Status::settled();
        assert_eq!(
            (s.state, s.last_update),
            (State::Active, Some(LastUpdateStatus::Successful))
        );
        assert!(s.is_settled());
    }

    #[test]
    fn update_in_progress_blocks_a_second_update() {
        let s = Status::settled().updating();
        assert_eq!(s.state, State::Active);
        assert_eq!(s.last_update, Some(LastUpdateStatus::InProgress));
        let e = s.check_updatable("arn:x").unwrap_err();
        assert_eq!(e.code, ErrorCode::ResourceConflictException);
        assert_eq!(
            e.message,
            "The operation cannot be performed at this time. An update is in progress for resource: arn:x"
        );
        assert!(s.check_invocable().is_ok());
    }

    #[test]
    fn pending_function_cannot_be_invoked_or_updated() {
        let s = Status::creating();
        let e = s.check_invocable().unwrap_err();
        assert_eq!(e.code, ErrorCode::ResourceConflictException);
        assert_eq!(
            e.message,
            "The operation cannot be performed at this time. The function is currently in the following state: Pending"
        );
        assert!(s.check_updatable("arn:x").is_err());
    }
}
