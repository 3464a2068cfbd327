//! The in-memory template matrix: exact 1:N search by dot product over normalised vectors.
//!
//! Every template is held twice: as int8 with a per-row scale (a quarter of the memory traffic,
//! scanned in full for every query) and as f32 (read only for the few candidates the int8 pass
//! puts at the top). The int8 error has a known bound, so after re-ranking the candidates
//! exactly, every other row whose approximate score could still reach the k-th exact score is
//! re-scored too: the answer is the same as a full f32 scan, not an approximation of it.

use std::collections::HashMap;

/// One scored template.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    pub template: u64,
    /// Dense index of the template's person (see [`Matrix::person_key`]).
    pub person: u32,
    pub score: f32,
}

/// The template matrix. Rows are kept contiguous; removal swaps the last row into the hole.
#[derive(Debug, Default)]
pub struct Matrix {
    dim: usize,
    /// `n × dim` int8 values.
    q: Vec<i8>,
    /// Per-row dequantisation scale: value ≈ q · scale.
    scale: Vec<f32>,
    /// `n × dim` exact values.
    f: Vec<f32>,
    ids: Vec<u64>,
    persons: Vec<u32>,
    row_of: HashMap<u64, usize>,
    /// Upper bounds over all rows ever inserted (still valid after removals).
    max_scale: f32,
    max_l1: f32,
}

/// Scratch space reused across queries (approximate scores, candidate order).
#[derive(Debug, Default)]
pub struct Scratch {
    approx: Vec<f32>,
    order: Vec<u32>,
    qv: Vec<i8>,
}

impl Matrix {
    pub fn new(dim: usize) -> Matrix {
        Matrix {
            dim,
            ..Matrix::default()
        }
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn contains(&self, template: u64) -> bool {
        self.row_of.contains_key(&template)
    }

    /// Bytes of memory per template held by the matrix (values, scale, id, person, index).
    pub fn bytes_per_template(&self) -> usize {
        self.dim * (1 + 4) + 4 + 8 + 4 + 24
    }

    /// Insert or replace a template. `v` must have the matrix's dimension.
    pub fn upsert(&mut self, template: u64, person: u32, v: &[f32]) {
        debug_assert_eq!(v.len(), self.dim);
        let (qrow, scale) = quantise(v);
        let l1 = qrow.iter().map(|&x| (x as f32).abs()).sum::<f32>() * scale;
        self.max_scale = self.max_scale.max(scale);
        self.max_l1 = self.max_l1.max(l1);
        match self.row_of.get(&template) {
            Some(&row) => {
                self.q[row * self.dim..(row + 1) * self.dim].copy_from_slice(&qrow);
                self.f[row * self.dim..(row + 1) * self.dim].copy_from_slice(v);
                self.scale[row] = scale;
                self.persons[row] = person;
            }
            None => {
                self.row_of.insert(template, self.ids.len());
                self.q.extend_from_slice(&qrow);
                self.f.extend_from_slice(v);
                self.scale.push(scale);
                self.ids.push(template);
                self.persons.push(person);
            }
        }
    }

    /// Remove a template; `false` if it was not there.
    pub fn remove(&mut self, template: u64) -> bool {
        let Some(row) = self.row_of.remove(&template) else {
            return false;
        };
        let last = self.ids.len() - 1;
        let d = self.dim;
        if row != last {
            self.q.copy_within(last * d..(last + 1) * d, row * d);
            self.f.copy_within(last * d..(last + 1) * d, row * d);
            self.scale[row] = self.scale[last];
            self.ids[row] = self.ids[last];
            self.persons[row] = self.persons[last];
            self.row_of.insert(self.ids[row], row);
        }
        self.q.truncate(last * d);
        self.f.truncate(last * d);
        self.scale.truncate(last);
        self.ids.truncate(last);
        self.persons.truncate(last);
        true
    }

    /// The exact vector of a template.
    pub fn vector(&self, template: u64) -> Option<&[f32]> {
        let row = *self.row_of.get(&template)?;
        Some(&self.f[row * self.dim..(row + 1) * self.dim])
    }

    /// Exact score of `probe` against one template.
    pub fn score(&self, template: u64, probe: &[f32]) -> Option<f32> {
        self.vector(template).map(|v| dot_f32(v, probe))
    }

    /// The best `k` persons for `probe` (one hit per person, its best template), best first.
    /// Scores are exact cosine similarities (for normalised inputs).
    pub fn search(&self, probe: &[f32], k: usize, scratch: &mut Scratch) -> Vec<Hit> {
        let n = self.len();
        if n == 0 || k == 0 || probe.len() != self.dim {
            return Vec::new();
        }
        let (qp, sp) = quantise(probe);
        scratch.qv.clear();
        scratch.qv.extend_from_slice(&qp);
        scratch.approx.clear();
        scratch.approx.resize(n, 0.0);
        dot_rows_i8(
            &self.q,
            &scratch.qv,
            self.dim,
            &self.scale,
            sp,
            &mut scratch.approx,
        );

        // Candidates: the best rows by approximate score.
        let want = (16 * k).max(128).min(n);
        scratch.order.clear();
        scratch.order.extend(0..n as u32);
        let approx = &scratch.approx;
        if want < n {
            scratch.order.select_nth_unstable_by(want - 1, |&a, &b| {
                approx[b as usize].total_cmp(&approx[a as usize])
            });
        }
        let mut exact: HashMap<usize, f32> = HashMap::with_capacity(want * 2);
        let mut cutoff_approx = f32::INFINITY;
        for &row in &scratch.order[..want] {
            let row = row as usize;
            cutoff_approx = cutoff_approx.min(approx[row]);
            exact.insert(row, self.exact_row(row, probe));
        }
        if want < n {
            // Error bound of one approximate score (see the module comment).
            let l1_probe: f32 = probe.iter().map(|x| x.abs()).sum();
            let eps = 0.5 * self.max_scale * l1_probe + 0.5 * sp * self.max_l1 + 1e-4;
            let kth = kth_person_score(&exact, &self.persons, k);
            match kth {
                // The k-th person is settled unless an unseen row could beat it.
                Some(kth) if cutoff_approx + eps < kth => {}
                _ => {
                    let floor = kth.unwrap_or(f32::NEG_INFINITY) - eps;
                    for (row, &a) in approx.iter().enumerate() {
                        if a >= floor && !exact.contains_key(&row) {
                            exact.insert(row, self.exact_row(row, probe));
                        }
                    }
                }
            }
        }
        best_per_person(&exact, &self.ids, &self.persons, k)
    }

    fn exact_row(&self, row: usize, probe: &[f32]) -> f32 {
        dot_f32(&self.f[row * self.dim..(row + 1) * self.dim], probe)
    }

    /// Exact scan of every row in f32 (reference for tests and benchmarks).
    pub fn search_exhaustive(&self, probe: &[f32], k: usize) -> Vec<Hit> {
        let exact: HashMap<usize, f32> = (0..self.len())
            .map(|row| (row, self.exact_row(row, probe)))
            .collect();
        best_per_person(&exact, &self.ids, &self.persons, k)
    }
}

fn kth_person_score(exact: &HashMap<usize, f32>, persons: &[u32], k: usize) -> Option<f32> {
    let mut best: HashMap<u32, f32> = HashMap::new();
    for (&row, &s) in exact {
        let e = best.entry(persons[row]).or_insert(f32::NEG_INFINITY);
        *e = e.max(s);
    }
    if best.len() < k {
        return None;
    }
    let mut v: Vec<f32> = best.into_values().collect();
    v.sort_by(|a, b| b.total_cmp(a));
    Some(v[k - 1])
}

fn best_per_person(
    exact: &HashMap<usize, f32>,
    ids: &[u64],
    persons: &[u32],
    k: usize,
) -> Vec<Hit> {
    let mut best: HashMap<u32, Hit> = HashMap::new();
    for (&row, &score) in exact {
        let hit = Hit {
            template: ids[row],
            person: persons[row],
            score,
        };
        best.entry(hit.person)
            .and_modify(|h| {
                if score > h.score || (score == h.score && hit.template < h.template) {
                    *h = hit;
                }
            })
            .or_insert(hit);
    }
    let mut hits: Vec<Hit> = best.into_values().collect();
    hits.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(a.template.cmp(&b.template))
    });
    hits.truncate(k);
    hits
}

/// Symmetric int8 quantisation with one scale per vector.
fn quantise(v: &[f32]) -> (Vec<i8>, f32) {
    let max = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    if !(max.is_finite() && max > 0.0) {
        return (vec![0; v.len()], 0.0);
    }
    let scale = max / 127.0;
    let q = v
        .iter()
        .map(|x| (x / scale).round().clamp(-127.0, 127.0) as i8)
        .collect();
    (q, scale)
}

/// f32 dot product in eight independent lanes (vectorises without fast-math).
#[inline]
pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, ra) = a.as_chunks::<8>();
    let (cb, rb) = b.as_chunks::<8>();
    for (x, y) in ca.iter().zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

#[inline(always)]
fn dot_rows_i8_generic(
    q: &[i8],
    probe: &[i8],
    dim: usize,
    scale: &[f32],
    sp: f32,
    out: &mut [f32],
) {
    for ((row, s), o) in q.chunks_exact(dim).zip(scale).zip(out.iter_mut()) {
        let mut acc = [0i32; 16];
        let (cr, rr) = row.as_chunks::<16>();
        let (cp, rp) = probe.as_chunks::<16>();
        for (x, y) in cr.iter().zip(cp) {
            for i in 0..16 {
                acc[i] += x[i] as i16 as i32 * y[i] as i16 as i32;
            }
        }
        let tail: i32 = rr.iter().zip(rp).map(|(&x, &y)| x as i32 * y as i32).sum();
        *o = (acc.iter().sum::<i32>() + tail) as f32 * s * sp;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn dot_rows_i8_avx2(q: &[i8], probe: &[i8], dim: usize, scale: &[f32], sp: f32, out: &mut [f32]) {
    dot_rows_i8_generic(q, probe, dim, scale, sp, out)
}

/// Approximate scores of every row: int8 dot products, scaled back.
fn dot_rows_i8(q: &[i8], probe: &[i8], dim: usize, scale: &[f32], sp: f32, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            unsafe { dot_rows_i8_avx2(q, probe, dim, scale, sp, out) };
            return;
        }
    }
    dot_rows_i8_generic(q, probe, dim, scale, sp, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random unit vectors (xorshift).
    pub fn unit_vectors(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut s = seed | 1;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f32 / (1u64 << 53) as f32 - 0.5
        };
        (0..n)
            .map(|_| {
                let v: Vec<f32> = (0..dim).map(|_| next()).collect();
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                v.into_iter().map(|x| x / norm).collect()
            })
            .collect()
    }

    #[test]
    fn search_equals_exhaustive_scan() {
        let dim = 192;
        let vs = unit_vectors(3000, dim, 7);
        let mut m = Matrix::new(dim);
        for (i, v) in vs.iter().enumerate() {
            m.upsert(i as u64 + 100, (i / 3) as u32, v);
        }
        let mut scratch = Scratch::default();
        // Probes: noisy copies of stored rows, and random vectors (no close match at all,
        // where the int8 order is least reliable).
        let mut probes: Vec<Vec<f32>> = unit_vectors(40, dim, 99);
        for (i, noise) in unit_vectors(40, dim, 5).iter().enumerate() {
            let base = &vs[i * 61 % vs.len()];
            let p: Vec<f32> = base.iter().zip(noise).map(|(a, b)| a + 0.6 * b).collect();
            let n = p.iter().map(|x| x * x).sum::<f32>().sqrt();
            probes.push(p.iter().map(|x| x / n).collect());
        }
        for (k, p) in probes.iter().enumerate() {
            let kk = 1 + k % 7;
            let fast = m.search(p, kk, &mut scratch);
            let slow = m.search_exhaustive(p, kk);
            assert_eq!(fast, slow, "probe {k}");
            assert_eq!(fast.len(), kk);
        }
    }

    #[test]
    fn remove_swaps_last_row_and_keeps_ids_right() {
        let vs = unit_vectors(10, 16, 3);
        let mut m = Matrix::new(16);
        for (i, v) in vs.iter().enumerate() {
            m.upsert(i as u64, i as u32, v);
        }
        assert!(m.remove(2));
        assert!(!m.remove(2));
        assert_eq!(m.len(), 9);
        let mut s = Scratch::default();
        let hit = m.search(&vs[9], 1, &mut s)[0];
        assert_eq!((hit.template, hit.person), (9, 9));
        assert!((hit.score - 1.0).abs() < 1e-5);
        assert!(m.search(&vs[2], 9, &mut s).iter().all(|h| h.template != 2));
        // Replacing a row keeps one copy.
        m.upsert(5, 5, &vs[0]);
        assert_eq!(m.len(), 9);
        assert!((m.score(5, &vs[0]).unwrap() - 1.0).abs() < 1e-5);
    }

    #[test]
    fn one_hit_per_person_best_template_first() {
        let vs = unit_vectors(4, 8, 11);
        let mut m = Matrix::new(8);
        m.upsert(1, 0, &vs[0]);
        m.upsert(2, 0, &vs[1]);
        m.upsert(3, 1, &vs[2]);
        let mut s = Scratch::default();
        let hits = m.search(&vs[1], 5, &mut s);
        assert_eq!(hits.len(), 2);
        assert_eq!(hits[0].template, 2);
        assert_eq!(hits[0].person, 0);
    }
}
