//! A small client of Flint's Lambda REST API (2015-03-31): JSON requests signed with SigV4
//! (aws-sigv4) over HTTP/1.1. CloudFormation's Lambda properties are the API's JSON fields, so
//! a resolved resource's properties are sent as they are instead of being mapped field by field
//! onto a typed SDK (which would also drop the fields it does not know).

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::Value;

use crate::error::{DeployError, Result};

/// What a path segment keeps unescaped (RFC 3986 unreserved).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A path segment (a function name, an ARN, a qualifier) escaped for a URL.
pub fn seg(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

pub struct LambdaClient {
    endpoint: String,
    authority: String,
    region: String,
    identity: Identity,
}

impl LambdaClient {
    pub fn new(endpoint: &str, region: &str, credentials: Credentials) -> Result<LambdaClient> {
        let endpoint = endpoint.trim_end_matches('/').to_string();
        let Some(authority) = endpoint.strip_prefix("http://") else {
            return Err(DeployError::Usage(format!(
                "--endpoint-url {endpoint}: flint deploy speaks plain http:// to Flint"
            )));
        };
        let authority = authority.split('/').next().unwrap_or(authority).to_string();
        Ok(LambdaClient {
            endpoint,
            authority,
            region: region.to_string(),
            identity: credentials.into(),
        })
    }

    /// One API call: `path` below the endpoint (with its query), the JSON answer (`Null` for an
    /// empty one), or the API's error.
    pub async fn call(
        &self,
        operation: &'static str,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value> {
        let body = match body {
            Some(v) => Bytes::from(v.to_string()),
            None => Bytes::new(),
        };
        let uri = format!("{}{path}", self.endpoint);
        let mut request = http::Request::builder()
            .method(method)
            .uri(&uri)
            .header("host", &self.authority)
            .header("content-type", "application/json")
            .body(Full::new(body.clone()))
            .map_err(|e| self.connect_error(e))?;
        self.sign(&mut request, &uri, &body)?;
        let response = self.send(request).await?;
        let status = response.status().as_u16();
        let error_type = response
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(|s| s.split(':').next().unwrap_or(s).to_string());
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| self.connect_error(e))?
            .to_bytes();
        let json: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        if status >= 300 {
            let code = error_type
                .or_else(|| {
                    json.get("Type")
                        .or_else(|| json.get("__type"))
                        .and_then(Value::as_str)
                        .map(str::to_string)
                })
                .unwrap_or_else(|| format!("HTTP {status}"));
            let message = json
                .get("Message")
                .or_else(|| json.get("message"))
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| json.to_string());
            return Err(DeployError::Api {
                operation,
                status,
                code,
                message,
            });
        }
        Ok(json)
    }

    fn sign(&self, request: &mut http::Request<Full<Bytes>>, uri: &str, body: &[u8]) -> Result<()> {
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&self.identity)
            .region(&self.region)
            .name("lambda")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| DeployError::Usage(format!("signing: {e}")))?
            .into();
        let headers: Vec<(String, String)> = request
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
            .collect();
        let signable = SignableRequest::new(
            request.method().as_str(),
            uri,
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::Bytes(body),
        )
        .map_err(|e| DeployError::Usage(format!("signing: {e}")))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| DeployError::Usage(format!("signing: {e}")))?
            .into_parts();
        instructions.apply_to_request_http1x(request);
        Ok(())
    }

    async fn send(
        &self,
        request: http::Request<Full<Bytes>>,
    ) -> Result<http::Response<hyper::body::Incoming>> {
        let stream = tokio::net::TcpStream::connect(&self.authority)
            .await
            .map_err(|e| self.connect_error(e))?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| self.connect_error(e))?;
        tokio::spawn(connection);
        sender
            .send_request(request)
            .await
            .map_err(|e| self.connect_error(e))
    }

    fn connect_error(&self, e: impl std::fmt::Display) -> DeployError {
        DeployError::Connect {
            endpoint: self.endpoint.clone(),
            message: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_escape_arn_colons_and_dollar_signs() {
        assert_eq!(seg("$LATEST"), "%24LATEST");
        assert_eq!(
            seg("arn:aws:lambda:us-east-1:1:function:f"),
            "arn%3Aaws%3Alambda%3Aus-east-1%3A1%3Afunction%3Af"
        );
    }

    #[test]
    fn only_plain_http_endpoints_are_taken() {
        let c = Credentials::new("a", "b", None, None, "t");
        assert!(LambdaClient::new("https://x", "us-east-1", c.clone()).is_err());
        let ok = LambdaClient::new("http://127.0.0.1:9000/", "us-east-1", c).unwrap();
        assert_eq!(ok.authority, "127.0.0.1:9000");
    }
}
