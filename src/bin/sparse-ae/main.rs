//! The `sparse-ae` command-line tool: parses arguments, calls the library,
//! maps errors to exit codes. No maths lives here.

mod cli;
mod commands;
mod data;
mod progress;
mod train_input;

use clap::Parser;
use cli::{Cli, Command};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = sparse_ae::kernels::Isa::from_env() {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    if let Err(e) = sparse_ae::nn::TopkPath::from_env() {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    if let Some(gb) = cli.max_memory {
        if !(gb.is_finite() && gb > 0.0 && gb <= 1e9) {
            eprintln!("error: --max-memory must be a positive number of GB, got {gb}");
            return ExitCode::from(2);
        }
        sparse_ae::memory::set_budget((gb * 1e9) as u64);
    }
    if let Some(n) = cli.threads {
        if n == 0 {
            eprintln!("error: --threads must be at least 1");
            return ExitCode::from(2);
        }
        if let Err(e) = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
        {
            eprintln!("error: cannot start {n} threads: {e}");
            return ExitCode::from(2);
        }
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
        Command::Download(a) => commands::download(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            // A closed pipe (`sparse-ae eval | head`) is not a failure.
            if let sparse_ae::Error::Io { source, .. } = &e
                && source.kind() == std::io::ErrorKind::BrokenPipe
            {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
