//! Compiles Flint's Java runtime client (java/src) with the host's javac into class files the
//! binary embeds, like the Python and Node.js bootstraps (written out to /var/runtime/java at
//! first use). Compiling here, once per change of the Java sources, keeps javac (and its ~3 s)
//! off every server start and cold start, and a server needs only a JRE. `--release 8`: the
//! classes then run on every JVM a `java*` runtime id may map to. Without a javac the build still
//! succeeds with no classes, and the Java runtimes report themselves unavailable.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let src = Path::new("java/src");
    println!("cargo:rerun-if-changed=java/src");
    println!("cargo:rerun-if-env-changed=FLINT_JAVAC");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    let classes = out.join("java-classes");
    let _ = std::fs::remove_dir_all(&classes);
    let mut sources = Vec::new();
    collect(src, "java", &mut sources);
    sources.sort();
    for s in &sources {
        println!("cargo:rerun-if-changed={}", s.display());
    }
    let javac = std::env::var("FLINT_JAVAC").unwrap_or_else(|_| "javac".to_string());
    let compiled = Command::new(&javac)
        .args([
            "--release",
            "8",
            "-Xlint:-options",
            "-encoding",
            "UTF-8",
            "-d",
        ])
        .arg(&classes)
        .args(&sources)
        .status();
    let mut files = Vec::new();
    match compiled {
        Ok(status) if status.success() => collect(&classes, "class", &mut files),
        Ok(status) => println!(
            "cargo:warning=javac failed ({status}): the java* runtimes will be unavailable"
        ),
        Err(e) => println!(
            "cargo:warning=no javac ({e}): the java* runtimes will be unavailable \
             (install openjdk-17-jdk-headless and rebuild)"
        ),
    }
    files.sort();
    let mut table = String::from("&[\n");
    for f in &files {
        let Ok(relative) = f.strip_prefix(&classes) else {
            continue;
        };
        let _ = writeln!(
            table,
            "    (\"java/classes/{}\", include_bytes!({:?}) as &[u8]),",
            relative.display(),
            f.display().to_string()
        );
    }
    table.push(']');
    if let Err(e) = std::fs::write(out.join("java_classes.rs"), table) {
        panic!("cannot write java_classes.rs: {e}");
    }
}

fn collect(dir: &Path, ext: &str, into: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, ext, into);
        } else if path.extension().is_some_and(|e| e == ext) {
            into.push(path);
        }
    }
}
