//! `lwdec`: the command line of lightweight-decoder.

mod args;
mod bank;
mod bench;
mod bench_encoder;
mod bench_texts;
mod data;
mod decode;
mod demo;
mod embed;
mod eval;
mod lm;
mod model;
mod options;
mod train;

use std::process::ExitCode;
use std::sync::atomic::{AtomicI32, Ordering};

use args::{BankCommand, Cli, Command, ModelCommand};
use clap::{Parser, ValueEnum};
use lightweight_decoder::phrase_bank::{BankBuildOptions, NearDuplicates};
use lightweight_decoder::{Decoder, DecoderKind, Error, Result};
use options::{DecoderArgs, DecoderChoice};

fn main() -> ExitCode {
    remove_temporary_files_on_signals();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lwdec: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    embed::set_precision(cli.encoder_precision);
    // numeric flags are checked before anything (input, bank, model, encoder) is loaded
    if let Some(args) = decoder_args(&cli.command) {
        if args.verify {
            args.verify_settings()?;
        }
    }
    match cli.command {
        Command::Decode {
            input,
            scale,
            mut text,
            texts,
            boundaries,
            output,
            format,
            decoder,
        } => {
            let format = decode::OutputFormat::choose(format, output.as_deref());
            match input {
                Some(input) => decode::run(
                    &input,
                    scale.as_deref(),
                    boundaries,
                    (output.as_deref(), format),
                    &decoder,
                ),
                None => {
                    text.extend(texts);
                    decode::run_texts(
                        &text,
                        decoder.encoder.clone().as_deref(),
                        boundaries,
                        (output.as_deref(), format),
                        &decoder,
                    )
                }
            }
        }
        Command::Bank { command } => match command {
            BankCommand::Build {
                corpus,
                out,
                index,
                train_size,
                nprobe,
                exclude_validation,
                drop_near_duplicates,
                keep_first,
            } => bank::build(
                &corpus,
                &out,
                exclude_validation,
                BankBuildOptions {
                    index_spec: index,
                    train_size,
                    nprobe,
                    near_duplicates: drop_near_duplicates.map(|cosine| NearDuplicates {
                        cosine,
                        from_row: keep_first,
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            ),
            BankCommand::Extend {
                bank,
                corpus,
                out,
                drop_near_duplicates,
                recheck_encoder,
                recheck_above,
            } => bank::extend(
                &bank,
                &corpus,
                out.as_deref(),
                drop_near_duplicates
                    .map(|cosine| NearDuplicates {
                        cosine,
                        recheck_above,
                        ..Default::default()
                    })
                    .as_ref(),
                recheck_encoder.as_deref(),
            ),
            BankCommand::Info { bank, verify } => bank::info(bank.as_deref(), verify),
        },
        Command::Demo { rows, decoder } => demo::run(usize::from(rows), &decoder),
        Command::Eval {
            labelled,
            boundaries,
            noise_cosine,
            output,
            decoded,
            judge,
            round_trip,
            decoder,
        } => eval::run(
            &labelled,
            boundaries,
            noise_cosine,
            eval::Outputs {
                report: output.as_deref(),
                decoded: decoded.as_deref(),
                judge: judge.as_deref(),
                round_trip: round_trip || decoder.encoder.is_some(),
            },
            &decoder,
        ),
        Command::Calibrate {
            labelled,
            out,
            objective,
            noise_cosine,
            decoder,
        } => eval::calibrate(&labelled, &out, objective, &noise_cosine, &decoder),
        Command::Train(args) => train::run(&args),
        Command::Model { command } => match command {
            ModelCommand::Export {
                checkpoint,
                precision,
                out,
            } => model::export(&checkpoint, precision, &out),
            ModelCommand::Info { model } => model::info(model.as_deref()),
        },
        Command::Embed(args) => embed::run(&args),
        Command::Lm(args) => lm::run(&args),
        Command::Data(args) => data::run(&args),
        Command::Bench {
            queries,
            json,
            runs,
            encoder,
            decoder,
        } => match &encoder.encoder {
            Some(dir) => bench_encoder::run(dir.as_deref(), &encoder, json),
            None => bench::run(queries as usize, runs as usize, json, &decoder),
        },
    }
}

/// Set by the SIGINT / SIGTERM handler: the signal's number.
static SIGNALLED: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(signal: libc::c_int) {
    // only an atomic store: async-signal-safe
    SIGNALLED.store(signal, Ordering::SeqCst);
}

/// On SIGINT or SIGTERM, removes the temporary files of writes in progress (an atomic output,
/// a bank being saved) and ends the process by that signal (exit status 128 + the signal).
/// The handler only records the signal; a watcher thread does the rest.
fn remove_temporary_files_on_signals() {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: `on_signal` is an `extern "C"` function that only stores to an atomic, which
        // is async-signal-safe; `signal` installs it for a valid signal number. A signal the
        // parent ignored (nohup, a background job) stays ignored.
        unsafe {
            let previous = libc::signal(signal, on_signal as *const () as libc::sighandler_t);
            if previous == libc::SIG_IGN {
                libc::signal(signal, libc::SIG_IGN);
            }
        }
    }
    std::thread::spawn(|| loop {
        let signal = SIGNALLED.load(Ordering::SeqCst);
        if signal != 0 {
            lightweight_decoder::io::remove_temporary_files();
            eprintln!("lwdec: stopped by signal {signal}; temporary files removed");
            // SAFETY: restoring the default action and raising the signal again ends the
            // process as killed by it, which the caller's shell then reports.
            unsafe {
                libc::signal(signal, libc::SIG_DFL);
                libc::raise(signal);
            }
            std::process::exit(128 + signal);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    });
}

/// The decoder flags of a command that has them.
fn decoder_args(command: &Command) -> Option<&DecoderArgs> {
    match command {
        Command::Decode { decoder, .. }
        | Command::Demo { decoder, .. }
        | Command::Eval { decoder, .. }
        | Command::Calibrate { decoder, .. }
        | Command::Bench { decoder, .. } => Some(decoder),
        _ => None,
    }
}

/// The library's decoder kind of a `--decoder` choice (`all` has none).
fn kind(choice: DecoderChoice) -> Result<DecoderKind> {
    match choice {
        DecoderChoice::PhraseBank => Ok(DecoderKind::PhraseBank),
        DecoderChoice::Generative => Ok(DecoderKind::Generative),
        DecoderChoice::Hybrid => Ok(DecoderKind::Hybrid),
        DecoderChoice::All => Err(Error::InvalidArgument(
            "--decoder all is only for `lwdec eval`".into(),
        )),
    }
}

/// The decoder `--decoder` names.
fn build_decoder(args: &DecoderArgs) -> Result<Box<dyn Decoder>> {
    build_decoder_with(args, None)
}

/// [`build_decoder`] verifying with `encoder` when one is loaded already (else `--verify`
/// loads it).
fn build_decoder_with(
    args: &DecoderArgs,
    encoder: Option<std::sync::Arc<dyn lightweight_decoder::Encoder>>,
) -> Result<Box<dyn Decoder>> {
    let builder = args.builder()?;
    let kind = kind(args.decoder)?;
    if !args.verify {
        return builder.build(kind);
    }
    let encoder = match encoder {
        Some(e) => e,
        None => std::sync::Arc::new(embed::load_encoder(
            args.encoder.as_deref(),
            embed::DEFAULT_BATCH,
        )?),
    };
    builder.verified(kind, encoder, args.verify_settings()?)
}

/// The decoders `--decoder` names, each with its name (several for `all`); `--verify` uses
/// `encoder` when one is loaded already.
fn build_decoders(
    args: &DecoderArgs,
    encoder: Option<std::sync::Arc<dyn lightweight_decoder::Encoder>>,
) -> Result<Vec<(String, Box<dyn Decoder>)>> {
    let choices = match args.decoder {
        DecoderChoice::All => vec![
            DecoderChoice::PhraseBank,
            DecoderChoice::Generative,
            DecoderChoice::Hybrid,
        ],
        one => vec![one],
    };
    let builder = args.builder()?;
    // one encoder for every verified decoder
    let encoder = match (args.verify, encoder) {
        (false, _) => None,
        (true, Some(e)) => Some(e),
        (true, None) => Some(std::sync::Arc::new(embed::load_encoder(
            args.encoder.as_deref(),
            embed::DEFAULT_BATCH,
        )?)
            as std::sync::Arc<dyn lightweight_decoder::Encoder>),
    };
    choices
        .into_iter()
        .map(|choice| {
            let name = choice
                .to_possible_value()
                .map_or_else(String::new, |v| v.get_name().to_string());
            let decoder = if let Some(encoder) = &encoder {
                builder.verified(kind(choice)?, encoder.clone(), args.verify_settings()?)?
            } else {
                builder.build(kind(choice)?)?
            };
            Ok((name, decoder))
        })
        .collect()
}
