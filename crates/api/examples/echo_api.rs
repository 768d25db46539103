//! The Lambda API front door over an echo backend, for trying SDKs against the api crate alone:
//! every operation answers with its name and input, every invoke echoes its payload.
//!
//! `cargo run -p flint-api --example echo_api -- 127.0.0.1:9100 [credentials-file]`

use std::sync::Arc;

use bytes::Bytes;
use flint_api::{ApiConfig, Backend, DownloadError, ZipRef};
use flint_control::{LambdaError, Scope};
use flint_engine::{FunctionSpec, InvokeError, InvokeRequest, InvokeResponse};
use serde_json::{json, Value};

struct Echo;

impl Backend for Echo {
    async fn execute(
        &self,
        scope: &Scope,
        operation: &str,
        input: Value,
    ) -> Result<Value, LambdaError> {
        if input.get("FunctionName").and_then(Value::as_str) == Some("missing") {
            return Err(LambdaError::not_found("Function not found: missing"));
        }
        Ok(
            json!({"Operation": operation, "Account": scope.account, "Region": scope.region, "Input": input}),
        )
    }

    fn resolve_invoke(
        &self,
        scope: &Scope,
        function_name: &str,
        _qualifier: Option<&str>,
    ) -> Result<(Arc<FunctionSpec>, String), LambdaError> {
        let arn = format!(
            "arn:aws:lambda:{}:{}:function:{function_name}",
            scope.region, scope.account
        );
        let spec = FunctionSpec {
            snapshot_id: "echo".into(),
            account: scope.account.clone(),
            region: scope.region.clone(),
            function_name: function_name.into(),
            version: "$LATEST".into(),
            function_arn: arn.clone(),
            runtime: "provided.al2023".into(),
            handler: "echo".into(),
            role: String::new(),
            code_dir: "/nonexistent".into(),
            layer_dirs: Vec::new(),
            hot_reload_dirs: Vec::new(),
            memory_mb: 128,
            timeout_secs: 3,
            ephemeral_storage_mb: 512,
            environment: Default::default(),
            log_group: format!("/aws/lambda/{function_name}"),
            log_format: "Text".into(),
            reserved_concurrency: None,
            tracing_active: false,
            image: None,
        };
        Ok((Arc::new(spec), arn))
    }

    async fn invoke(&self, req: InvokeRequest) -> Result<InvokeResponse, InvokeError> {
        Ok(InvokeResponse {
            payload: req.payload,
            function_error: None,
            log_result: None,
            executed_version: "$LATEST".into(),
        })
    }

    async fn enqueue_async(&self, _req: InvokeRequest) -> Result<(), InvokeError> {
        Ok(())
    }

    async fn code_zip(&self, _zip: ZipRef<'_>) -> Result<Bytes, DownloadError> {
        Err(DownloadError::NotFound)
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:9100".to_string());
    let credentials = args
        .next()
        .map(flint_api::load_credentials_file)
        .transpose()?;
    let app = flint_api::router_with(
        Arc::new(Echo),
        ApiConfig {
            credentials,
            ..ApiConfig::default()
        },
    );
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    eprintln!("echo Lambda API on http://{listen}");
    axum::serve(listener, app).await?;
    Ok(())
}
