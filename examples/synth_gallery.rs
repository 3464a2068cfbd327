//! Fill a gallery with synthetic persons for load tests: each gets one random unit-length
//! template of the configured embedder's dimension, written straight into the sled cache (no
//! outbox, nothing sent to Milvus). Random directions in 192-d are far from every real face,
//! so they never match; they cost the same to search as real templates.
//!
//! Usage: synth_gallery --config FILE --count N [--seed S]
//! Run it before `facegate serve` (sled allows one process per gallery). `scripts/loadtest`
//! uses it to build a 10k gallery.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use facegate::config::Config;
use facegate::gallery::{Cache, ModelTag, NewPerson, Person, Template, new_template_id, now_ms};
use facegate::vision::Models;

/// xorshift64*: reproducible and good enough for random directions.
struct Rng(u64);

impl Rng {
    fn next_f32(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        (x >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

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
    let cache = Cache::open(&path, &model)
        .with_context(|| format!("opening {} (is facegate serve running?)", path.display()))?;
    let start = Instant::now();
    let mut rng = Rng(seed.max(1));
    let now = now_ms();
    let mut templates = Vec::with_capacity(count);
    for i in 0..count {
        let id = format!("synth-{i:06}");
        let person = Person::from_new(
            id.clone(),
            NewPerson {
                name: format!("Synthetic {i}"),
                ..NewPerson::default()
            },
            now,
        )?;
        cache.put_person(&person, None)?;
        let mut e: Vec<f32> = (0..model.dim).map(|_| rng.next_f32()).collect();
        let norm = e.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
        e.iter_mut().for_each(|x| *x /= norm);
        templates.push(Template {
            id: new_template_id()?,
            person: id,
            embedding: e,
            updated_ms: now,
        });
    }
    for chunk in templates.chunks(1000) {
        cache.put_templates(chunk, None)?;
    }
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
