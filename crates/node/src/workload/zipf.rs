//! Key choosers for workloads: uniform, Zipfian (YCSB's generator, Gray et al., "Quickly
//! generating billion-record synthetic databases", SIGMOD 1994) and sequential.
//!
//! The Zipfian chooser draws item `i` of `n` with probability proportional to `1 / (i+1)^theta`
//! (theta 0.99 as in YCSB): item 0 is the hottest. Its constants take O(n) to compute once.

use rand::Rng;

pub struct Zipf {
    n: u64,
    theta: f64,
    alpha: f64,
    zetan: f64,
    eta: f64,
}

fn zeta(n: u64, theta: f64) -> f64 {
    (1..=n).map(|i| 1.0 / (i as f64).powf(theta)).sum()
}

impl Zipf {
    pub fn new(n: u64, theta: f64) -> Zipf {
        let n = n.max(1);
        let zetan = zeta(n, theta);
        let zeta2 = zeta(2.min(n), theta);
        let alpha = 1.0 / (1.0 - theta);
        let eta = (1.0 - (2.0 / n as f64).powf(1.0 - theta)) / (1.0 - zeta2 / zetan);
        Zipf { n, theta, alpha, zetan, eta }
    }

    pub fn sample(&self, rng: &mut impl Rng) -> u64 {
        let u: f64 = rng.random();
        let uz = u * self.zetan;
        if uz < 1.0 {
            return 0;
        }
        if uz < 1.0 + 0.5f64.powf(self.theta) {
            return 1.min(self.n - 1);
        }
        let v = (self.n as f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64;
        v.min(self.n - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn zipf_is_skewed_toward_low_items_and_in_range() {
        let z = Zipf::new(1000, 0.99);
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut counts = vec![0u32; 1000];
        for _ in 0..100_000 {
            counts[z.sample(&mut rng) as usize] += 1;
        }
        assert!(counts[0] > counts[10] && counts[10] > counts[500], "{} {} {}", counts[0], counts[10], counts[500]);
        let top10: u32 = counts[..10].iter().sum();
        assert!(top10 > 25_000, "the 10 hottest of 1000 keys take over a quarter of draws: {top10}");
        assert!(counts.iter().filter(|c| **c > 0).count() > 500, "the tail is still drawn");
    }
}
