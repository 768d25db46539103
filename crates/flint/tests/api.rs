//! End-to-end tests of the real `flint` binary driven by the official AWS SDK for Rust
//! (`aws-sdk-lambda`), as a user's Rust program would drive it: each test starts `flint serve`
//! on a free port with its own temporary data dir.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_lambda::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{
    Environment, FunctionCode, InvocationType, LastUpdateStatus, Runtime, State,
};
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use serde_json::{json, Value};

const ACCOUNT: &str = "000000000000";
const REGION: &str = "us-east-1";
const ROLE: &str = "arn:aws:iam::000000000000:role/lambda-role";
const PYTHON_PROBE: &str = include_str!("../../../tests/fixtures/python/index.py");
const PROVIDED_BOOTSTRAP: &str = include_str!("../../../tests/fixtures/provided/bootstrap.py");

/// kill(2), ignoring failure (the process may be gone already).
fn kill(pid: i32, signal: Signal) {
    let _ = nix::sys::signal::kill(Pid::from_raw(pid), signal);
}

/// A running `flint serve`, stopped (and its process group ended) when dropped.
struct Server {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Server {
    async fn start(data_dir: &Path) -> Server {
        use std::os::unix::process::CommandExt;

        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let log = data_dir.with_extension(format!("{port}.log"));
        let log_file = std::fs::File::create(&log).expect("server log file");
        let child = Command::new(env!("CARGO_BIN_EXE_flint"))
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(data_dir)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log file"))
            .stderr(log_file)
            .process_group(0)
            .spawn()
            .expect("start flint serve");
        let mut server = Server { child, port, log };
        server.wait_ready().await;
        server
    }

    async fn wait_ready(&mut self) {
        let client = self.client();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("flint serve exited ({status}):\n{}", self.log_text());
            }
            if client.list_functions().send().await.is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "flint serve not ready:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn client(&self) -> aws_sdk_lambda::Client {
        let credentials =
            aws_sdk_lambda::config::Credentials::new("AKIDTEST", "secret", None, None, "tests");
        let config = aws_sdk_lambda::Config::builder()
            .behavior_version(aws_sdk_lambda::config::BehaviorVersion::latest())
            .region(aws_sdk_lambda::config::Region::new(REGION))
            .credentials_provider(credentials)
            .endpoint_url(format!("http://127.0.0.1:{}", self.port))
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            .retry_config(aws_sdk_lambda::config::retry::RetryConfig::disabled())
            .build();
        aws_sdk_lambda::Client::from_conf(config)
    }

    /// SIGKILL, as a crash would: nothing gets a chance to flush.
    fn crash(&mut self) {
        kill(self.child.id() as i32, Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let pid = self.child.id() as i32;
        if let Ok(None) = self.child.try_wait() {
            kill(pid, Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        // Whatever is left of its process group (execution environments).
        kill(-pid, Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

fn zip_of(files: &[(&str, &str, u32)]) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut buf);
        for (name, content, mode) in files {
            let options = zip::write::SimpleFileOptions::default().unix_permissions(*mode);
            zip.start_file(*name, options).expect("zip entry");
            zip.write_all(content.as_bytes()).expect("zip write");
        }
        zip.finish().expect("zip finish");
    }
    buf.into_inner()
}

fn python_zip() -> Vec<u8> {
    zip_of(&[("index.py", PYTHON_PROBE, 0o644)])
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

fn arn(name: &str) -> String {
    format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}")
}

async fn create(
    client: &aws_sdk_lambda::Client,
    name: &str,
    runtime: Runtime,
    handler: &str,
    zip: Vec<u8>,
) -> aws_sdk_lambda::operation::create_function::CreateFunctionOutput {
    let created = client
        .create_function()
        .function_name(name)
        .runtime(runtime)
        .handler(handler)
        .role(ROLE)
        .code(FunctionCode::builder().zip_file(Blob::new(zip)).build())
        .send()
        .await
        .expect("create function");
    wait_active(client, name).await;
    created
}

async fn wait_active(client: &aws_sdk_lambda::Client, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let conf = client
            .get_function_configuration()
            .function_name(name)
            .send()
            .await
            .expect("get function configuration");
        let active = conf.state() == Some(&State::Active);
        let updated = conf.last_update_status() != Some(&LastUpdateStatus::InProgress);
        if active && updated {
            return;
        }
        assert!(Instant::now() < deadline, "{name} not Active: {conf:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn invoke(
    client: &aws_sdk_lambda::Client,
    name: &str,
    event: Value,
) -> (i32, Option<String>, Value) {
    let out = client
        .invoke()
        .function_name(name)
        .payload(Blob::new(event.to_string()))
        .send()
        .await
        .expect("invoke");
    let payload = out
        .payload()
        .map(|b| serde_json::from_slice(b.as_ref()).expect("payload is JSON"))
        .unwrap_or(Value::Null);
    (
        out.status_code(),
        out.function_error().map(str::to_string),
        payload,
    )
}

/// (HTTP status, error code, message) of a failed call.
fn error_parts<E: ProvideErrorMetadata>(
    err: &SdkError<E, aws_sdk_lambda::config::http::HttpResponse>,
) -> (u16, String, String) {
    (
        err.raw_response().map(|r| r.status().as_u16()).unwrap_or(0),
        err.code().unwrap_or_default().to_string(),
        err.message().unwrap_or_default().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn function_lifecycle_create_get_list_update_delete() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&dir.path().join("data")).await;
    let client = server.client();
    let name = unique("lifecycle");

    let created = create(
        &client,
        &name,
        Runtime::Python311,
        "index.handler",
        python_zip(),
    )
    .await;
    assert_eq!(created.function_name(), Some(name.as_str()));
    assert_eq!(created.function_arn(), Some(arn(&name).as_str()));
    assert_eq!(created.timeout(), Some(3));
    assert_eq!(created.memory_size(), Some(128));
    assert_eq!(created.version(), Some("$LATEST"));

    let got = client
        .get_function()
        .function_name(&name)
        .send()
        .await
        .expect("get function");
    let conf = got.configuration().expect("configuration");
    assert_eq!(conf.state(), Some(&State::Active));
    assert_eq!(conf.code_sha256(), created.code_sha256());
    assert_eq!(got.code().and_then(|c| c.repository_type()), Some("S3"));

    let listed = client
        .list_functions()
        .send()
        .await
        .expect("list functions");
    let names: Vec<&str> = listed
        .functions()
        .iter()
        .filter_map(|f| f.function_name())
        .collect();
    assert!(names.contains(&name.as_str()), "{names:?}");

    let before = conf.revision_id().map(str::to_string);
    let updated = client
        .update_function_configuration()
        .function_name(&name)
        .timeout(10)
        .memory_size(256)
        .environment(Environment::builder().variables("COLOR", "blue").build())
        .send()
        .await
        .expect("update configuration");
    assert_eq!(updated.timeout(), Some(10));
    assert_eq!(updated.memory_size(), Some(256));
    assert_ne!(updated.revision_id().map(str::to_string), before);
    wait_active(&client, &name).await;
    let (_, _, env) = invoke(&client, &name, json!({"action": "env"})).await;
    assert_eq!(env["COLOR"], "blue");
    assert_eq!(env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "256");

    let new_code = zip_of(&[(
        "index.py",
        "def handler(e, c):\n    return {'v': 2}\n",
        0o644,
    )]);
    let code = client
        .update_function_code()
        .function_name(&name)
        .zip_file(Blob::new(new_code))
        .send()
        .await
        .expect("update code");
    assert_ne!(code.code_sha256(), created.code_sha256());
    wait_active(&client, &name).await;
    let (_, _, payload) = invoke(&client, &name, json!({})).await;
    assert_eq!(payload, json!({"v": 2}));

    client
        .delete_function()
        .function_name(&name)
        .send()
        .await
        .expect("delete");
    let err = client
        .get_function()
        .function_name(&name)
        .send()
        .await
        .expect_err("deleted");
    let (status, code, message) = error_parts(&err);
    assert_eq!(status, 404);
    assert_eq!(code, "ResourceNotFoundException");
    assert_eq!(message, format!("Function not found: {}", arn(&name)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoke_python_returns_result_and_function_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&dir.path().join("data")).await;
    let client = server.client();
    let name = unique("python");
    create(
        &client,
        &name,
        Runtime::Python311,
        "index.handler",
        python_zip(),
    )
    .await;

    let (status, error, payload) = invoke(&client, &name, json!({"hello": "sdk"})).await;
    assert_eq!(
        (status, error, payload),
        (200, None, json!({"hello": "sdk"}))
    );

    let (status, error, payload) = invoke(
        &client,
        &name,
        json!({"action": "error", "message": "sdk boom"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(error.as_deref(), Some("Unhandled"));
    assert_eq!(payload["errorMessage"], "sdk boom");
    assert_eq!(payload["errorType"], "Exception");

    let (_, _, ctx) = invoke(&client, &name, json!({"action": "context"})).await;
    assert_eq!(ctx["function_name"], name.as_str());
    assert_eq!(ctx["invoked_function_arn"], arn(&name).as_str());

    let event = client
        .invoke()
        .function_name(&name)
        .invocation_type(InvocationType::Event)
        .payload(Blob::new("{}"))
        .send()
        .await
        .expect("event invoke");
    assert_eq!(event.status_code(), 202);
    let dry = client
        .invoke()
        .function_name(&name)
        .invocation_type(InvocationType::DryRun)
        .send()
        .await
        .expect("dry run");
    assert_eq!(dry.status_code(), 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoke_provided_bootstrap_through_the_runtime_api() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&dir.path().join("data")).await;
    let client = server.client();
    let name = unique("provided");
    let zip = zip_of(&[("bootstrap", PROVIDED_BOOTSTRAP, 0o755)]);
    create(
        &client,
        &name,
        Runtime::Providedal2023,
        "function.handler",
        zip,
    )
    .await;

    let (status, error, payload) = invoke(&client, &name, json!({"n": 1})).await;
    assert_eq!((status, error), (200, None));
    assert_eq!(payload["event"], json!({"n": 1}));
    assert_eq!(
        payload["headers"]["lambda-runtime-invoked-function-arn"],
        arn(&name).as_str()
    );
    let (_, _, again) = invoke(&client, &name, json!({"n": 2})).await;
    assert_eq!(again["count"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_function_is_resource_not_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&dir.path().join("data")).await;
    let client = server.client();
    let name = unique("missing");

    let err = client
        .get_function()
        .function_name(&name)
        .send()
        .await
        .expect_err("missing");
    assert!(matches!(
        err.as_service_error(),
        Some(
            aws_sdk_lambda::operation::get_function::GetFunctionError::ResourceNotFoundException(_)
        )
    ));
    assert_eq!(
        error_parts(&err),
        (
            404,
            "ResourceNotFoundException".into(),
            format!("Function not found: {}", arn(&name))
        )
    );

    let err = client
        .invoke()
        .function_name(&name)
        .payload(Blob::new("{}"))
        .send()
        .await
        .expect_err("missing");
    assert_eq!(
        error_parts(&err),
        (
            404,
            "ResourceNotFoundException".into(),
            format!("Function not found: {}:$LATEST", arn(&name))
        )
    );

    let err = client
        .delete_function()
        .function_name(&name)
        .send()
        .await
        .expect_err("missing");
    assert_eq!(error_parts(&err).0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creating_an_existing_function_is_a_conflict() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&dir.path().join("data")).await;
    let client = server.client();
    let name = unique("twice");
    create(
        &client,
        &name,
        Runtime::Python311,
        "index.handler",
        python_zip(),
    )
    .await;

    let err = client
        .create_function()
        .function_name(&name)
        .runtime(Runtime::Python311)
        .handler("index.handler")
        .role(ROLE)
        .code(
            FunctionCode::builder()
                .zip_file(Blob::new(python_zip()))
                .build(),
        )
        .send()
        .await
        .expect_err("conflict");
    assert!(matches!(
        err.as_service_error(),
        Some(
            aws_sdk_lambda::operation::create_function::CreateFunctionError::ResourceConflictException(_)
        )
    ));
    assert_eq!(
        error_parts(&err),
        (
            409,
            "ResourceConflictException".into(),
            format!("Function already exist: {name}")
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_survive_sigkill_and_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let name = unique("durable");
    let (sha, revision) = {
        let mut server = Server::start(&data).await;
        let client = server.client();
        let created = create(
            &client,
            &name,
            Runtime::Python311,
            "index.handler",
            python_zip(),
        )
        .await;
        let (_, _, payload) = invoke(&client, &name, json!({"before": true})).await;
        assert_eq!(payload, json!({"before": true}));
        let conf = client
            .get_function_configuration()
            .function_name(&name)
            .send()
            .await
            .expect("get configuration");
        server.crash();
        (
            created.code_sha256().map(str::to_string),
            conf.revision_id().map(str::to_string),
        )
    };

    let server = Server::start(&data).await;
    let client = server.client();
    let conf = client
        .get_function_configuration()
        .function_name(&name)
        .send()
        .await
        .expect("still there after SIGKILL");
    assert_eq!(conf.code_sha256().map(str::to_string), sha);
    assert_eq!(conf.revision_id().map(str::to_string), revision);
    let (status, error, payload) = invoke(&client, &name, json!({"after": true})).await;
    assert_eq!(
        (status, error, payload),
        (200, None, json!({"after": true}))
    );
}

/// Copies a directory tree (the fixture data dir) so the test can let Flint upgrade it.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create copy");
    for entry in std::fs::read_dir(from).expect("read fixture") {
        let entry = entry.expect("fixture entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy fixture file");
        }
    }
}

/// Whether any log stream of the function has a line containing `needle`.
fn function_logs_contain(data: &Path, function: &str, needle: &str) -> bool {
    fn walk(dir: &Path, needle: &str) -> bool {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return false;
        };
        entries.flatten().any(|e| {
            let path = e.path();
            if path.is_dir() {
                walk(&path, needle)
            } else {
                std::fs::read_to_string(&path).is_ok_and(|t| t.contains(needle))
            }
        })
    }
    walk(
        &data
            .join("work/logs")
            .join(ACCOUNT)
            .join(REGION)
            .join(function),
        needle,
    )
}

/// A data dir written by the release before stored formats were versioned
/// (tests/fixtures/datadir-v0, made by tests/fixtures/make_datadir_v0.py) loads whole: every
/// resource is there as it was created, the function runs, and the async event it left pending
/// (in the old format, with the engine's spec embedded) runs once it may.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_previous_releases_data_dir_loads_and_its_pending_event_runs() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/datadir-v0");
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("data");
    copy_tree(&fixture, &data);
    let server = Server::start(&data).await;
    let client = server.client();

    let f = client
        .get_function()
        .function_name("upgrade-fn")
        .send()
        .await
        .expect("the function is there");
    let conf = f.configuration().expect("configuration");
    let env = conf
        .environment()
        .and_then(|e| e.variables())
        .and_then(|v| v.get("GREETING"))
        .cloned();
    assert_eq!(env.as_deref(), Some("v2"));
    assert_eq!(conf.memory_size(), Some(256));
    assert_eq!(conf.layers().len(), 1, "its layer");
    assert_eq!(
        f.tags().and_then(|t| t.get("team")).map(String::as_str),
        Some("flint")
    );
    let alias = client
        .get_alias()
        .function_name("upgrade-fn")
        .name("live")
        .send()
        .await
        .expect("the alias");
    assert_eq!(alias.function_version(), Some("1"));
    let policy = client
        .get_policy()
        .function_name("upgrade-fn")
        .send()
        .await
        .expect("the policy");
    assert!(policy
        .policy()
        .is_some_and(|p| p.contains("s3.amazonaws.com")));
    let eic = client
        .get_function_event_invoke_config()
        .function_name("upgrade-fn")
        .send()
        .await
        .expect("the event invoke config");
    assert_eq!(eic.maximum_retry_attempts(), Some(1));
    client
        .get_function_url_config()
        .function_name("upgrade-fn")
        .send()
        .await
        .expect("the URL config");
    let pc = client
        .get_provisioned_concurrency_config()
        .function_name("upgrade-fn")
        .qualifier("live")
        .send()
        .await
        .expect("the provisioned concurrency config");
    assert_eq!(pc.requested_provisioned_concurrent_executions(), Some(1));
    let csc = client
        .get_function_code_signing_config()
        .function_name("upgrade-fn")
        .send()
        .await
        .expect("the code signing binding");
    assert!(csc
        .code_signing_config_arn()
        .contains(":code-signing-config:"));
    let mappings = client
        .list_event_source_mappings()
        .function_name("upgrade-fn")
        .send()
        .await
        .expect("the event source mappings");
    assert_eq!(mappings.event_source_mappings().len(), 1);
    assert_eq!(mappings.event_source_mappings()[0].batch_size(), Some(5));
    let layers = client.list_layers().send().await.expect("the layers");
    assert_eq!(layers.layers().len(), 1);

    // Version 1 (through the alias) runs, with its layer at /opt.
    let out = client
        .invoke()
        .function_name("upgrade-fn")
        .qualifier("live")
        .payload(Blob::new(r#"{"n": 1}"#))
        .send()
        .await
        .expect("invoke the alias");
    let payload: Value =
        serde_json::from_slice(out.payload().map(|b| b.as_ref()).unwrap_or_default())
            .expect("JSON payload");
    assert_eq!(payload, json!({"x": 42, "e": {"n": 1}}));

    // The pending event was stored for a function whose reserved concurrency is 0: read back
    // from the old format, it is handled as AWS handles such an event (sent to the on-failure
    // destination unattempted; this function has none), never run.
    const PENDING: &str = "b2deaca7-21aa-4dbb-ab56-8d4c28c0fc38";
    let deadline = Instant::now() + Duration::from_secs(30);
    while !server.log_text().lines().any(|l| {
        l.contains("async event not run: the function's reserved concurrency is 0")
            && l.contains(PENDING)
    }) {
        assert!(
            Instant::now() < deadline,
            "the pending event was never handled:\n{}",
            server.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!function_logs_contain(&data, "upgrade-parked", PENDING));
    assert!(
        !server.log_text().contains("moved aside"),
        "nothing unreadable:\n{}",
        server.log_text()
    );
}
