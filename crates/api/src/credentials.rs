//! The accepted access keys, read from an AWS shared-credentials file (INI: `[profile]` sections
//! with `aws_access_key_id` and `aws_secret_access_key`).

use std::collections::HashMap;
use std::path::Path;

/// Access key id → secret access key.
#[derive(Clone, Default)]
pub struct Credentials {
    keys: HashMap<String, String>,
}

impl std::fmt::Debug for Credentials {
    // Secrets never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_ids", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("line {line}: {message}")]
    Syntax { line: usize, message: String },
    #[error(
        "no access keys found (expected aws_access_key_id and aws_secret_access_key in a section)"
    )]
    Empty,
}

impl Credentials {
    pub fn new(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        Self {
            keys: pairs.into_iter().collect(),
        }
    }

    pub fn secret(&self, access_key_id: &str) -> Option<&str> {
        self.keys.get(access_key_id).map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Parses the shared-credentials INI format.
    pub fn parse(text: &str) -> Result<Self, CredentialsError> {
        let mut keys = HashMap::new();
        let mut section: Option<(Option<String>, Option<String>)> = None;
        let mut flush = |s: &mut Option<(Option<String>, Option<String>)>| {
            if let Some((Some(id), Some(secret))) = s.take() {
                keys.insert(id, secret);
            }
        };
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if line.starts_with('[') {
                if !line.ends_with(']') {
                    return Err(CredentialsError::Syntax {
                        line: i + 1,
                        message: "unterminated section header".into(),
                    });
                }
                flush(&mut section);
                section = Some((None, None));
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                return Err(CredentialsError::Syntax {
                    line: i + 1,
                    message: "expected key = value".into(),
                });
            };
            let Some(current) = section.as_mut() else {
                return Err(CredentialsError::Syntax {
                    line: i + 1,
                    message: "key outside a [section]".into(),
                });
            };
            match k.trim().to_ascii_lowercase().as_str() {
                "aws_access_key_id" => current.0 = Some(v.trim().to_string()),
                "aws_secret_access_key" => current.1 = Some(v.trim().to_string()),
                _ => {}
            }
        }
        flush(&mut section);
        if keys.is_empty() {
            return Err(CredentialsError::Empty);
        }
        Ok(Self { keys })
    }
}

/// Reads an AWS shared-credentials file.
pub fn load_credentials_file(path: impl AsRef<Path>) -> Result<Credentials, CredentialsError> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|source| CredentialsError::Io {
        path: path.display().to_string(),
        source,
    })?;
    Credentials::parse(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_profile_and_ignores_other_keys() {
        let c = Credentials::parse(
            "# comment\n[default]\naws_access_key_id = AKIDEXAMPLE\naws_secret_access_key = s3cr3t\n\
             region = us-east-1\n\n[other]\naws_access_key_id=123456789012\naws_secret_access_key=x\n\
             aws_session_token = t\n",
        )
        .unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c.secret("AKIDEXAMPLE"), Some("s3cr3t"));
        assert_eq!(c.secret("123456789012"), Some("x"));
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }

    #[test]
    fn rejects_files_without_keys_or_with_garbage() {
        assert!(matches!(
            Credentials::parse("[default]\nregion=x\n"),
            Err(CredentialsError::Empty)
        ));
        assert!(matches!(
            Credentials::parse("garbage\n"),
            Err(CredentialsError::Syntax { line: 1, .. })
        ));
        assert!(load_credentials_file("/nonexistent/flint-creds").is_err());
    }
}
