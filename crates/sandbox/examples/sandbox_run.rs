//! Runs one program in a sandbox, for trying the sandbox by hand and timing it:
//!
//! `cargo run --release -p flint-sandbox --example sandbox_run -- [--code DIR] [--memory MB]
//!  [--bind PATH]... [--repeat N] PROGRAM [ARGS...]`
//!
//! Prints the program's output, its exit, peak memory, and spawn-to-exit times.

use std::path::PathBuf;
use std::time::Instant;

use flint_sandbox::{SandboxSpec, Sandboxes, INIT_ARG};
use tokio::io::AsyncReadExt;

fn main() {
    if std::env::args().nth(1).as_deref() == Some(INIT_ARG) {
        flint_sandbox::init_main();
    }
    let mut args = std::env::args().skip(1).peekable();
    let mut code: Option<PathBuf> = None;
    let mut memory_mb = 128;
    let mut binds = Vec::new();
    let mut repeat = 1usize;
    while let Some(flag) = args.peek().filter(|a| a.starts_with("--")).cloned() {
        args.next();
        let value = args.next().unwrap_or_default();
        match flag.as_str() {
            "--code" => code = Some(value.into()),
            "--memory" => memory_mb = value.parse().unwrap_or(128),
            "--bind" => binds.push(PathBuf::from(value)),
            "--repeat" => repeat = value.parse().unwrap_or(1),
            other => {
                eprintln!("unknown flag {other}");
                std::process::exit(2);
            }
        }
    }
    let Some(program) = args.next() else {
        eprintln!("usage: sandbox_run [--code DIR] [--memory MB] [--bind PATH]... [--repeat N] PROGRAM [ARGS...]");
        std::process::exit(2);
    };
    let rest: Vec<String> = args.collect();
    let scratch = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("tempdir: {e}");
            std::process::exit(1);
        }
    };
    let code_dir = code.unwrap_or_else(|| scratch.path().join("code"));
    let _ = std::fs::create_dir_all(&code_dir);
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    rt.block_on(async {
        let exe = std::env::current_exe().expect("current_exe");
        let sandboxes = match Sandboxes::new(&scratch.path().join("state"), exe) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(1);
            }
        };
        eprintln!("{}", sandboxes.summary());
        let mut times = Vec::new();
        for n in 0..repeat {
            let tmp_dir = scratch.path().join(format!("tmp-{n}"));
            let _ = std::fs::create_dir_all(&tmp_dir);
            let spec = SandboxSpec {
                id: format!("run-{}-{n}", std::process::id()),
                program: program.clone().into(),
                args: rest.clone(),
                env: vec![("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into())],
                code_dir: code_dir.clone(),
                opt_dir: None,
                runtime_dir: None,
                image_root: None,
                working_dir: None,
                extra_ro_binds: binds.clone(),
                ro_mounts: vec![],
                tmp_dir,
                tmp_size_mb: 512,
                memory_mb,
                isolate_network: false,
            };
            let start = Instant::now();
            let mut sb = match sandboxes.spawn(&spec) {
                Ok(sb) => sb,
                Err(e) => {
                    eprintln!("{e}");
                    std::process::exit(1);
                }
            };
            let spawned = start.elapsed();
            let mut out = Vec::new();
            let mut err = Vec::new();
            if let (Some(mut o), Some(mut e)) = (sb.stdout.take(), sb.stderr.take()) {
                let _ = tokio::join!(o.read_to_end(&mut out), e.read_to_end(&mut err));
            }
            let exit = sb.wait().await;
            let total = start.elapsed();
            times.push(total);
            if n == 0 {
                print!("{}", String::from_utf8_lossy(&out));
                eprint!("{}", String::from_utf8_lossy(&err));
                eprintln!(
                    "exit {exit:?}, peak memory {:?} bytes, spawn {:.2} ms, spawn-to-exit {:.2} ms",
                    sb.peak_memory_bytes(),
                    spawned.as_secs_f64() * 1e3,
                    total.as_secs_f64() * 1e3
                );
            }
        }
        if repeat > 1 {
            times.sort();
            eprintln!(
                "{repeat} runs: median {:.2} ms, min {:.2} ms, max {:.2} ms",
                times[repeat / 2].as_secs_f64() * 1e3,
                times[0].as_secs_f64() * 1e3,
                times[repeat - 1].as_secs_f64() * 1e3
            );
        }
    });
}
