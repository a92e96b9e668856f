//! `lwdec data`: where the bank and models are found, and their install into the user data
//! folder for projects that depend on the crate (`lightweight_decoder::data`).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use lightweight_decoder::data::{checkout_dir, user_data_dir};
use lightweight_decoder::generative::GenerativeDecoder;
use lightweight_decoder::install::install;
use lightweight_decoder::language_model::NgramModel;
use lightweight_decoder::{MpnetEncoder, PhraseBank, Result};

/// `lwdec data` and its subcommands.
#[derive(Args)]
pub struct DataArgs {
    #[command(subcommand)]
    command: DataCommand,
}

#[derive(Subcommand)]
enum DataCommand {
    /// Copy the bank, the generator and the model of English into a data folder (verified
    /// by their checksums before they replace what was there).
    Install {
        /// The data folder (default: the user data folder, $LWDEC_DATA_DIR or
        /// $XDG_DATA_HOME/lightweight-decoder or ~/.local/share/lightweight-decoder).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Where to copy from: a checkout of the repository or another data folder (default:
        /// the checkout this binary was built from).
        #[arg(long)]
        from: Option<PathBuf>,
    },
    /// Print where each file is found now (the first of: its environment variable, the
    /// checkout, the user data folder).
    Where,
}

/// Runs `lwdec data`.
pub fn run(args: &DataArgs) -> Result<()> {
    match &args.command {
        DataCommand::Install { dir, from } => {
            let into = dir.clone().unwrap_or_else(user_data_dir);
            let from = from.clone().unwrap_or_else(checkout_dir);
            let installed = install(&from, &into)?;
            for (file, bytes) in &installed.files {
                println!("{:>12} bytes  {}", bytes, into.join(file).display());
            }
            println!(
                "installed into {} (verified); the encoder: bash scripts/install-encoder.sh",
                installed.dir.display()
            );
            Ok(())
        }
        DataCommand::Where => {
            println!("data folder      {}", user_data_dir().display());
            println!("bank             {}", PhraseBank::default_dir().display());
            println!(
                "generator        {}",
                GenerativeDecoder::default_model_path().display()
            );
            println!("model of English {}", NgramModel::default_path().display());
            println!(
                "encoder          {}",
                MpnetEncoder::default_location().display()
            );
            Ok(())
        }
    }
}
