//! Entry point of the `sever` binary; everything else lives in the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = sever_cli::Cli::parse();
    // `sever serve` sets up its own logs once its configuration is read.
    if !matches!(cli.command, sever_cli::Command::Serve { .. }) {
        sever_cli::init_logging(cli.verbose);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(sever_cli::run(cli)) {
        Ok(code) => code,
        Err(sever_cli::CliError::Usage(m)) => {
            eprintln!("error: {m}");
            ExitCode::from(2)
        }
        Err(sever_cli::CliError::Runtime(m)) => {
            eprintln!("error: {m}");
            ExitCode::from(1)
        }
    }
}
