//! The `facegate` command line.

mod cli;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::{Args, Parser, Subcommand};
use facegate::config::Config;
use facegate::eval;
use facegate::vision::Models;

/// Where a device keeps its configuration.
pub(crate) const SYSTEM_CONFIG: &str = "/etc/facegate/config.toml";

#[derive(Parser)]
#[command(
    name = "facegate",
    version,
    about = "Face-ID access controller: camera → face recognition → door relay",
    long_about = "Face-ID access controller: finds faces with BlazeFace, recognises them with \
MobileFaceNet (both run locally in tract), and decides who may open the door.\n\n\
Try it on photos first:\n  facegate detect photo.jpg\n  facegate compare alice1.jpg alice2.jpg\n  \
facegate eval --lfw-pairs lfw/pairsDevTest.txt --plot roc.png",
    after_help = "Configuration: --config FILE, else /etc/facegate/config.toml if it exists, else \
built-in defaults. Models: the configured models_dir, else $FACEGATE_MODELS, ./models, \
/usr/share/facegate/models. Logging: RUST_LOG=debug for more detail."
)]
struct Cli {
    /// Configuration file (TOML). Default: /etc/facegate/config.toml when present.
    #[arg(long, short, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Find faces in images: box, confidence, landmarks and quality for each.
    Detect {
        #[arg(required = true, value_name = "IMG")]
        images: Vec<PathBuf>,
        #[command(flatten)]
        out: Output,
    },
    /// Print the embedding (face template) of the largest face in an image.
    Embed {
        #[arg(value_name = "IMG")]
        image: PathBuf,
        /// Which face, by size (0 = largest).
        #[arg(long, default_value_t = 0)]
        face: usize,
        #[command(flatten)]
        models: ModelChoice,
    },
    /// Compare the largest face in two images: similarity and same/different at the threshold.
    Compare {
        #[arg(value_name = "IMG_A")]
        a: PathBuf,
        #[arg(value_name = "IMG_B")]
        b: PathBuf,
        #[command(flatten)]
        models: ModelChoice,
        #[command(flatten)]
        out: Output,
    },
    /// Measure verification accuracy with the LFW protocol (10-fold for a View 2 file; for
    /// View 1, threshold from pairsDevTrain.txt, accuracy on pairsDevTest.txt), open-set
    /// identification (--open-set DIR: FPIR and FNIR, DET plots, calibration; see the README),
    /// or with --liveness the presentation-attack detection (APCER per attack type, BPCER).
    Eval {
        /// LFW pairs file (pairs.txt, pairsDevTest.txt or pairsDevTrain.txt).
        #[arg(long, value_name = "FILE", required_unless_present_any = ["open_set", "liveness"])]
        lfw_pairs: Option<PathBuf>,
        #[command(flatten)]
        open: cli::open_set::OpenSetArgs,
        /// Evaluate liveness instead, on the face collection DIR (antispoof/ demo images,
        /// live photos of lfw-dev/, att_faces/, deepface/, face_recognition/ and a synthetic
        /// print / screen-replay set made from them). --plot writes the DET curve.
        #[arg(long, value_name = "DIR", conflicts_with_all = ["lfw_pairs", "open_set"])]
        liveness: Option<PathBuf>,
        /// Liveness: camera frames per visit.
        #[arg(long, default_value_t = 3)]
        frames: usize,
        /// Liveness: live photos taken from each set (a fixed hash order).
        #[arg(long, default_value_t = 150)]
        per_set: usize,
        /// Directory holding NAME/NAME_000i.jpg. Default: the pairs file's directory.
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
        /// Pairs to choose the threshold on (View 1). Default: pairsDevTrain.txt beside a
        /// pairsDevTest.txt.
        #[arg(long, value_name = "FILE")]
        train_pairs: Option<PathBuf>,
        /// Write the ROC curve as PNG.
        #[arg(long, value_name = "PNG")]
        plot: Option<PathBuf>,
        /// Embedder(s) to evaluate, by model card name; repeat to compare (one curve each).
        #[arg(long = "embedder", value_name = "NAME")]
        embedders: Vec<String>,
        /// LFW View 1 by face size: each photo also pasted, scaled, into a 640×480 frame, and
        /// the accuracy of the closer look and the mirror image (on, off, or only for some
        /// faces) at each scale. SCALES: comma-separated factors and/or "native".
        #[arg(long, value_name = "SCALES", num_args = 0..=1,
              default_missing_value = "native,1.6,2.2,3,4", conflicts_with_all = ["open_set", "liveness"])]
        by_face_size: Option<String>,
        /// Worker threads (each runs its own pipeline).
        #[arg(long, default_value_t = default_threads())]
        threads: usize,
        #[command(flatten)]
        out: Output,
    },
    /// Run the door: camera → recognition → decision → relay and display, until Ctrl-C.
    /// Prints every decision and door event as a JSON line.
    Run(cli::run::RunArgs),
    /// The audit log: access decisions, unlocks, enrollments, deletions, filtered by time,
    /// person and outcome (oldest first, local time).
    Events(cli::events::EventsArgs),
    /// The device key that seals the gallery and the audit log at rest: create, rotate.
    #[command(subcommand)]
    Key(cli::key::KeyCommand),
    /// Manage the gallery of enrolled persons (local cache, and Milvus when configured).
    #[command(subcommand)]
    Gallery(cli::gallery::GalleryCommand),
    /// Enroll a folder of photos: DIR/<person>/<images>. The folder name becomes the person's
    /// id and name; photos without exactly one usable face, or whose face already matches
    /// another person, are rejected with the reason.
    Enroll {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// Enroll faces even if they already match another person.
        #[arg(long)]
        allow_duplicate: bool,
        #[command(flatten)]
        out: Output,
    },
    /// Write the documented default configuration (to --config, else /etc/facegate/config.toml)
    /// with a new admin token's hash, and print the token once; make the device key beside it
    /// (device.key, 0600; an existing one is kept).
    Init {
        /// Replace an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Print a new random API token and the configuration line with its SHA-256.
    Token {
        /// Make the line for the read-only viewer token.
        #[arg(long)]
        viewer: bool,
    },
    /// Check this installation (config, models, camera, GPIO, display, gallery, Milvus, audit
    /// log, disk, clock) and say what is wrong and what to do. Exit code 1 on any PROBLEM.
    ///
    /// Reads the same configuration as `facegate run` (--config, else
    /// /etc/facegate/config.toml, else the built-in defaults). The models are loaded and run
    /// once on a built-in picture; the camera gives one frame; the GPIO chip is found by its
    /// label and the relay, door contact and exit button lines are inspected.
    ///
    /// Each line starts with OK, WARNING (works, but look at it), PROBLEM (the door will not
    /// work as configured; the line says what to do) or SKIPPED (not configured). The exit code
    /// is 1 when any check is a PROBLEM, else 0.
    ///
    /// Safe on a running door: nothing is changed. GPIO lines are only inspected, never
    /// requested, so the door is never unlocked; displays are not drawn on; no gallery or
    /// Milvus collection is created. While `facegate run` holds the gallery or the camera,
    /// those checks say so instead.
    Doctor(cli::doctor::DoctorArgs),
    /// Serve the HTTP API (enrollment, verify/identify, audit log) without a camera or door.
    Serve {
        /// Listen on this address instead of api.listen (IP:PORT).
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
}

#[derive(Args)]
struct Output {
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ModelChoice {
    /// Embedder by model card name (default: the configured one).
    #[arg(long, value_name = "NAME")]
    embedder: Option<String>,
}

fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The configuration file in use: --config, else /etc/facegate/config.toml when present;
/// `None`: the built-in defaults.
pub(crate) fn config_file(path: Option<&Path>) -> Option<PathBuf> {
    match path {
        Some(p) => Some(p.to_owned()),
        None if Path::new(SYSTEM_CONFIG).is_file() => Some(PathBuf::from(SYSTEM_CONFIG)),
        None => None,
    }
}

fn load_config(path: Option<&Path>) -> Result<Config> {
    let config = match config_file(path) {
        Some(p) => Config::load(&p)?,
        None => Config::default(),
    };
    // A named access.time_zone (else the system's zone) for the weekly schedules and the local
    // times of every command.
    if !config.access.time_zone.trim().is_empty() {
        let _ = facegate::access::when::set_local_zone(config.access.time_zone()?);
    }
    Ok(config)
}

pub(crate) fn load_models(config: &Config, embedder: Option<&str>) -> Result<Models> {
    Ok(facegate::app::load_models(config, embedder)?)
}

/// The same-person threshold: the configuration's, else the model card's.
pub(crate) fn threshold(config: &Config, models: &Models) -> Result<f32> {
    Ok(facegate::app::threshold(config, models)?)
}

fn run(cli: Cli) -> Result<ExitCode> {
    // `init` writes the configuration and `token` needs none: neither reads one. `doctor`
    // reads it itself, to report a broken one as one of its checks.
    let config = match &cli.command {
        Command::Init { .. } | Command::Token { .. } | Command::Doctor(_) => Config::default(),
        _ => load_config(cli.config.as_deref())?,
    };
    match cli.command {
        Command::Detect { images, out } => cli::photos::detect(&config, &images, out.json),
        Command::Embed {
            image,
            face,
            models,
        } => cli::photos::embed(&config, &image, face, models.embedder.as_deref()),
        Command::Compare { a, b, models, out } => {
            cli::photos::compare(&config, &a, &b, models.embedder.as_deref(), out.json)
        }
        Command::Eval {
            open:
                open @ cli::open_set::OpenSetArgs {
                    open_set: Some(_), ..
                },
            embedders,
            threads,
            out,
            ..
        } => cli::open_set::run(
            &config,
            open.open_set.as_deref().unwrap_or(Path::new(".")),
            &open,
            embedders.first().map(String::as_str),
            threads,
            out.json,
        ),
        Command::Eval {
            lfw_pairs,
            liveness,
            frames,
            per_set,
            root,
            train_pairs,
            plot,
            embedders,
            by_face_size,
            threads,
            out,
            ..
        } => match (liveness, lfw_pairs) {
            (None, Some(pairs)) if by_face_size.is_some() => cli::eval::eval_by_face_size(
                &config,
                &pairs,
                root,
                train_pairs,
                by_face_size.as_deref().unwrap_or_default(),
                embedders.first().map(String::as_str),
                threads,
                out.json,
            ),
            (Some(dir), _) => cli::eval::eval_liveness(
                &config,
                &dir,
                eval::liveness::Settings {
                    frames,
                    per_set,
                    threads,
                },
                plot,
                out.json,
            ),
            (None, Some(pairs)) => cli::eval::eval_lfw(
                &config,
                &pairs,
                root,
                train_pairs,
                plot,
                embedders,
                threads,
                out.json,
            ),
            (None, None) => bail!("give --lfw-pairs FILE, --open-set DIR or --liveness DIR"),
        },
        Command::Gallery(cmd) => cli::gallery::run(&config, cmd),
        Command::Run(args) => cli::run::run(&config, args),
        Command::Events(args) => cli::events::run(&config, args),
        Command::Key(cmd) => cli::key::run(&config, cmd),
        Command::Enroll {
            dir,
            allow_duplicate,
            out,
        } => cli::gallery::enroll_dir(&config, &dir, allow_duplicate, out.json),
        Command::Serve { listen } => cli::serve::serve(&config, listen.as_deref()),
        Command::Init { force } => cli::serve::init(
            cli.config.as_deref().unwrap_or(Path::new(SYSTEM_CONFIG)),
            force,
        ),
        Command::Token { viewer } => cli::serve::token(viewer),
        Command::Doctor(args) => cli::doctor::run(cli.config.as_deref(), args),
    }
}
