//! The `flint` command: `flint serve` runs the Lambda-compatible server, `flint runtimes` lists how
//! runtime ids map to interpreters on this machine (`flint runtimes install` fetches the AWS SDKs), `flint logs` reads a function's logs, `flint async-queue` shows pending async events, `flint deploy` deploys a SAM/CloudFormation
//! template's Lambda resources to a running Flint. The
//! same binary re-executes itself as each sandbox's init (`flint __sandbox-init`).

mod async_queue;
mod cpu_latency;
mod logs;
mod runtimes;
mod serve;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// mimalloc instead of glibc's malloc: on the warm invoke path (a few dozen short-lived
/// allocations per invoke across hyper, axum and the engine, plus hyper's 8 KiB read buffers)
/// glibc's `malloc`/`free`/`malloc_consolidate` took ~10 % of Flint's CPU (BENCHMARKS.md, issue 16).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "flint",
    version,
    about = "A self-hosted, AWS Lambda-compatible serverless platform in one binary",
    long_about = "Flint serves the AWS Lambda REST API (2015-03-31) and really runs functions \
                  (python3.x, nodejs, provided.*) in isolated sandboxes. Point the AWS CLI, boto3 \
                  or an AWS SDK at it with --endpoint-url."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the Lambda API (and run functions) until interrupted.
    Serve(serve::ServeArgs),
    /// List the Lambda runtime ids, the interpreters that run them on this machine and the AWS
    /// SDKs the managed runtimes carry; `flint runtimes install` fetches what is missing.
    Runtimes(runtimes::RuntimesArgs),
    /// Print a function's logs (START/END/REPORT lines and everything it wrote).
    Logs(logs::LogsArgs),
    /// Show the asynchronous queue: events pending per function, retrying, next due.
    AsyncQueue(async_queue::AsyncQueueArgs),
    // (`flint deploy --help`'s text is flint_deploy::DeployArgs's.)
    Deploy(flint_deploy::DeployArgs),
}

/// Where Flint keeps its state unless told otherwise.
pub(crate) fn default_data_dir() -> PathBuf {
    PathBuf::from("./.flint")
}

fn main() -> std::process::ExitCode {
    // A sandbox's init is this same binary: take that path before anything else (no threads,
    // no logging set-up) so the child stays a plain single-threaded process.
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == flint_sandbox::INIT_ARG)
    {
        flint_sandbox::init_main();
    }

    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Runtimes(args) => runtimes::run(args),
        Command::Logs(args) => logs::run(args),
        Command::AsyncQueue(args) => async_queue::run(args),
        Command::Deploy(args) => flint_deploy::run(args).map_err(anyhow::Error::from),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flint: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
