//! `bitacora`: the teachers' and director's tool. A thin `main` over `run`: errors are printed
//! once, in Spanish, and mapped to exit codes: 0 ok, 2 bad input (nothing was written), 1 any
//! other failure.

mod app;
mod cli;
mod cmd;

use std::process::ExitCode;

use bitacora_core::ModelError;
use bitacora_core::bundle::BundleError;
use clap::Parser;
use clap::error::{ContextKind, ContextValue, ErrorKind};

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => return error_de_clap(e),
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: no se pudo iniciar: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(cmd::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(codigo(&e))
        }
    }
}

/// 2 when the cause is the person's input, 1 otherwise.
fn codigo(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if cause.downcast_ref::<app::Uso>().is_some() {
            return 2;
        }
        if let Some(m) = cause.downcast_ref::<ModelError>() {
            return if m.is_bad_input() { 2 } else { 1 };
        }
        if let Some(b) = cause.downcast_ref::<BundleError>() {
            return match b {
                BundleError::Store(_) => 1,
                _ => 2,
            };
        }
    }
    1
}

/// Clap's own messages are English; the common usage errors are said again in Spanish.
fn error_de_clap(e: clap::Error) -> ExitCode {
    let arg = || match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => s.clone(),
        Some(ContextValue::Strings(v)) => v.join(", "),
        _ => String::new(),
    };
    let valor = || match e.get(ContextKind::InvalidValue) {
        Some(ContextValue::String(s)) => s.clone(),
        _ => String::new(),
    };
    let msg = match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            return if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
        ErrorKind::MissingRequiredArgument => format!("falta un dato obligatorio: {}", arg()),
        ErrorKind::ValueValidation => {
            let causa = std::error::Error::source(&e)
                .map(|s| s.to_string())
                .unwrap_or_default();
            format!("valor inválido «{}» para {}: {causa}", valor(), arg())
        }
        ErrorKind::InvalidValue => format!("valor inválido «{}» para {}", valor(), arg()),
        ErrorKind::UnknownArgument => format!("opción desconocida: {}", arg()),
        ErrorKind::InvalidSubcommand => format!("comando desconocido: {}", arg()),
        ErrorKind::MissingSubcommand => "falta el comando".to_string(),
        ErrorKind::ArgumentConflict => {
            // "--texto <TEXTO>" → "--texto": the option as the person typed it.
            let sin_valor = |s: &str| s.split(' ').next().unwrap_or_default().to_string();
            let otra = match e.get(ContextKind::PriorArg) {
                Some(ContextValue::String(s)) => Some(sin_valor(s)),
                Some(ContextValue::Strings(v)) => Some(
                    v.iter()
                        .map(|s| sin_valor(s))
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
                _ => None,
            };
            match (sin_valor(&arg()), otra) {
                (a, Some(o)) if !a.is_empty() && a == o => {
                    format!("la opción {a} se indicó más de una vez; indíquela una sola vez")
                }
                (a, Some(o)) if !a.is_empty() => {
                    format!("la opción {a} no se puede usar junto con {o}")
                }
                _ => "hay opciones que no se pueden usar juntas".to_string(),
            }
        }
        _ => {
            let _ = e.print();
            return ExitCode::from(2);
        }
    };
    eprintln!("error: {msg}\n(use --help para ver las opciones)");
    ExitCode::from(2)
}
