//! The seeded random generator of the synthetic ICS: SplitMix64, small, fast and stable
//! across versions (the data must not change when a dependency does).

/// SplitMix64 with the draws the generator needs.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform on [0, 1).
    pub(super) fn f(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub(super) fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    pub(super) fn chance(&mut self, p: f64) -> bool {
        self.f() < p
    }
    pub(super) fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
    pub(super) fn one(&mut self, xs: &[&'static str]) -> &'static str {
        xs[self.below(xs.len())]
    }
    pub(super) fn poisson(&mut self, lambda: f64) -> usize {
        let l = (-lambda.min(30.0)).exp();
        let mut k = 0;
        let mut p = 1.0;
        loop {
            p *= self.f();
            if p <= l || k > 60 {
                return k;
            }
            k += 1;
        }
    }
    /// Exponential with mean 1.
    pub(super) fn exp1(&mut self) -> f64 {
        -(1.0 - self.f()).ln()
    }
    /// Standard normal (Box–Muller, one of the pair).
    pub(super) fn normal(&mut self) -> f64 {
        let u = 1.0 - self.f();
        let v = self.f();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

#[cfg(test)]
mod tests {
    use super::Rng;

    #[test]
    fn same_seed_same_draws_and_sane_moments() {
        let (mut a, mut b) = (Rng(7), Rng(7));
        assert!((0..100).all(|_| a.next() == b.next()));
        let n = 200_000;
        let mean = |f: &mut dyn FnMut() -> f64| (0..n).map(|_| f()).sum::<f64>() / n as f64;
        let mut r = Rng(1);
        assert!((mean(&mut || r.f()) - 0.5).abs() < 0.01);
        assert!((mean(&mut || r.exp1()) - 1.0).abs() < 0.02);
        assert!(mean(&mut || r.normal()).abs() < 0.02);
        assert!((mean(&mut || r.poisson(3.0) as f64) - 3.0).abs() < 0.03);
    }
}
