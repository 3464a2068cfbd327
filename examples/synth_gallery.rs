//! Fill a gallery with synthetic persons for load tests (`facegate::gallery::synth`): each gets
//! one random unit-length template of the configured embedder's dimension, written straight
//! into the sled cache (no outbox, nothing sent to Milvus).
//!
//! Usage: synth_gallery --config FILE --count N [--seed S]
//! Run it before `facegate serve` (sled allows one process per gallery). `scripts/loadtest`
//! uses it to build a 10k gallery.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use facegate::config::Config;
use facegate::gallery::{Cache, ModelTag};
use facegate::vision::Models;

fn main() -> Result<()> {
    let (mut config_path, mut count, mut seed) = (None, 0usize, 42u64);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| anyhow!("{a} needs a value"));
        match a.as_str() {
            "--config" => config_path = Some(PathBuf::from(value()?)),
            "--count" => count = value()?.parse().context("--count")?,
            "--seed" => seed = value()?.parse().context("--seed")?,
            other => bail!(
                "unknown argument {other}; usage: synth_gallery --config FILE --count N [--seed S]"
            ),
        }
    }
    let config_path = config_path.ok_or_else(|| anyhow!("--config FILE is required"))?;
    let config = Config::load(&config_path)?;
    let dir = config
        .vision
        .models_dir()
        .ok_or_else(|| anyhow!("no models directory"))?;
    let models = Models::load(&dir, &config.vision.detector, config.vision.embedder_name())?;
    let model = ModelTag::new(&models.embedder.name, models.dim());
    let path = config.gallery.path();
    let key = facegate::gallery::load_device_key(&config.gallery)?;
    let cache = Cache::open(&path, &model, &key)
        .with_context(|| format!("opening {} (is facegate serve running?)", path.display()))?;
    let start = Instant::now();
    facegate::gallery::synth::fill(&cache, count, seed)?;
    println!(
        "{} synthetic persons with one {}-d template each added to {} in {:.1} s ({} templates in all)",
        count,
        model.dim,
        path.display(),
        start.elapsed().as_secs_f64(),
        cache.template_count()
    );
    Ok(())
}
