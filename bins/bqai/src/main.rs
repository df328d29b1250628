//! Entry point: parse the command line and hand over to [`bqai::cli::run`].

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = bqai::cli::Cli::parse();
    match bqai::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The whole chain, so configuration mistakes are explained in full.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
