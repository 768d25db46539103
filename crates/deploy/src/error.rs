//! What can stop a deploy, each with the message the user sees (the resource's logical id first
//! when one resource is at fault).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid template: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("template: {0}")]
    Template(String),
    #[error("Parameters: {0}")]
    Parameter(String),
    #[error("{logical_id}: {message}")]
    Resource { logical_id: String, message: String },
    #[error("{0}")]
    Usage(String),
    #[error("Lambda API {operation}: {code}: {message}")]
    Api {
        operation: &'static str,
        status: u16,
        code: String,
        message: String,
    },
    #[error("cannot reach Flint at {endpoint} (is `flint serve` running there?): {message}")]
    Connect { endpoint: String, message: String },
}

impl DeployError {
    /// The same error, said of one resource.
    pub fn for_resource(self, logical_id: &str) -> DeployError {
        match self {
            DeployError::Resource { .. } | DeployError::Connect { .. } => self,
            other => DeployError::Resource {
                logical_id: logical_id.to_string(),
                message: other.to_string(),
            },
        }
    }

    /// An API error's code (`ResourceNotFoundException` …), if this is one.
    pub fn api_code(&self) -> Option<&str> {
        match self {
            DeployError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, DeployError::Api { status: 404, .. })
            || self.api_code() == Some("ResourceNotFoundException")
    }
}

pub type Result<T> = std::result::Result<T, DeployError>;
