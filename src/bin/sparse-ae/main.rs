//! The `sparse-ae` command-line tool: parses arguments, calls the library,
//! maps errors to exit codes. No maths lives here.

#[macro_use]
mod out;
mod cli;
mod commands;
mod data;
mod ended;
mod files;
mod metrics_file;
mod progress;
mod train_input;

use clap::Parser;
use cli::{Cli, Command};
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    #[cfg(unix)]
    ended::survive_file_size_limit();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // Help and version go to stdout, usage errors to stderr; a full
        // stdout is an error here too, a closed one is not.
        Err(e) => {
            let code = e.exit_code();
            return match e.print().and_then(|()| std::io::stdout().flush()) {
                Err(err) if code == 0 && err.kind() != std::io::ErrorKind::BrokenPipe => {
                    note!("error: {}: {err}", out::STDOUT);
                    ExitCode::FAILURE
                }
                _ => ExitCode::from(u8::try_from(code).unwrap_or(2)),
            };
        }
    };
    // Every command, those that start no training too.
    if let Err(e) = sparse_ae::parallel::check_env().and_then(|()| commands::read_stats_wanted()) {
        note!("error: {e}");
        return ExitCode::from(2);
    }
    if let Some(gb) = cli.max_memory {
        if !(gb.is_finite() && gb > 0.0 && gb <= 1e9) {
            note!(
                "error: --max-memory must be a number of GB above 0 and at most 1e9, got {}",
                sparse_ae::io::json::short_number(gb)
            );
            return ExitCode::from(2);
        }
        sparse_ae::memory::set_budget((gb * 1e9) as u64);
    }
    // `--threads`, else RAYON_NUM_THREADS, within the same bound: more
    // only wastes time (100,000 took 26 s to start) and no machine has that
    // many cores.
    if let Some(Err(e)) = cli
        .threads
        .map(|n| sparse_ae::parallel::check_threads("--threads", n))
    {
        note!("error: {e}");
        return ExitCode::from(2);
    }
    if let Err(e) = sparse_ae::parallel::start_global_pool(cli.threads) {
        // A bad thread count is a usage error; threads the system will not
        // start are a failure, as any other refused resource.
        if let sparse_ae::Error::Config { .. } = e {
            let hint = match cli.threads {
                Some(_) => "",
                None => " (or give --threads N)",
            };
            note!("error: {e}{hint}");
            return ExitCode::from(2);
        }
        note!("error: {e}");
        return ExitCode::FAILURE;
    }
    let result = match cli.command {
        Command::Train(a) => commands::train(*a),
        Command::Eval(a) => commands::eval(a),
        Command::Encode(a) => commands::encode(a),
        Command::Reconstruct(a) => commands::reconstruct(a),
        Command::Features(a) => commands::features(a),
        Command::Histogram(a) => commands::histogram(a),
        Command::Score(a) => commands::score(a),
        Command::Gradcheck(a) => commands::gradcheck(a),
        Command::Export(a) => commands::export(a),
        Command::Presets => commands::presets(),
        Command::Info => commands::info(),
        Command::Download(a) => commands::download(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            // A closed pipe (`sparse-ae eval | head`) is not a failure.
            if out::is_closed_stdout(&e) {
                return ExitCode::SUCCESS;
            }
            note!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
