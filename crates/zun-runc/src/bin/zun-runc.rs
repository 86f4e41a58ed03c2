//! `zun-runc`: registered with the engine as an OCI runtime; see the
//! library for what it does. It then replaces itself with the real runtime.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let mut argv = std::env::args();
    let argv0 = argv.next().unwrap_or_default();
    let args: Vec<String> = argv.collect();
    if let Some(call) = zun_runc::parse_create(&args) {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        let links = zun_runc::ENGINE_LINKS.map(|(dir, kind)| (PathBuf::from(dir), kind));
        if let Err(err) = zun_runc::prepare(&call, &links, &cwd) {
            eprintln!("zun-runc: {err}");
            return ExitCode::FAILURE;
        }
    }
    let runtime = zun_runc::wrapped_runtime(&argv0);
    // exec only returns on failure.
    let err = Command::new(&runtime).args(&args).exec();
    eprintln!("zun-runc: cannot run {runtime}: {err}");
    ExitCode::from(127)
}
