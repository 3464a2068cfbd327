//! Synthetic persons for load tests and benchmarks: each gets one random unit-length template
//! of the gallery's dimension, written straight into the sled cache (no outbox: nothing is
//! sent to Milvus). Random directions in 192-d are far from every real face (|cosine| < 0.3
//! with overwhelming probability), so they never match; they cost the same to search as real
//! templates. Used by `examples/synth_gallery.rs` (the API load test) and `benches/door.rs`.

use super::{Cache, NewPerson, Person, Result, Template, new_template_id, now_ms};

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

/// Add `count` persons `synth-000000`, `synth-000001`, ... named "Synthetic N", with one random
/// template each, reproducible from `seed`.
pub fn fill(cache: &Cache, count: usize, seed: u64) -> Result<()> {
    let dim = cache.model_tag().dim;
    let mut rng = Rng(seed.max(1));
    let now = now_ms();
    let mut templates = Vec::with_capacity(count.min(1000));
    let mut persons = Vec::with_capacity(count.min(1000));
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
        persons.push(person);
        let mut e: Vec<f32> = (0..dim).map(|_| rng.next_f32()).collect();
        let norm = e.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
        e.iter_mut().for_each(|x| *x /= norm);
        templates.push(Template {
            id: new_template_id()?,
            person: id,
            embedding: e,
            updated_ms: now,
        });
        if templates.len() == 1000 {
            cache.put_persons(&persons)?;
            persons.clear();
            cache.put_templates(&templates, None)?;
            templates.clear();
        }
    }
    if !templates.is_empty() {
        cache.put_persons(&persons)?;
        cache.put_templates(&templates, None)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gallery::ModelTag;

    #[test]
    fn fills_the_cache_with_unit_templates_that_match_nothing_real() {
        let dir = std::env::temp_dir().join(format!("facegate-synth-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let cache = Cache::open(
            &dir,
            &ModelTag::new("mobilefacenet", 192),
            &crate::crypto::DeviceKey::generate().unwrap(),
        )
        .unwrap();
        fill(&cache, 2500, 7).unwrap();
        assert_eq!(cache.template_count(), 2500);
        // A unit probe along one axis: random directions stay far from it.
        let mut probe = vec![0.0f32; 192];
        probe[0] = 1.0;
        let hits = cache.search(&probe, 3);
        assert_eq!(hits.len(), 3);
        assert!(hits[0].score < 0.45, "{hits:?}");
        drop(cache);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
