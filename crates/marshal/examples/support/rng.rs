//! The benchmark generators' random numbers: xorshift64*, deterministic and dependency-free,
//! good enough for synthetic data. Shared by the examples through `#[path]`.

pub struct Rng(pub u64);

#[allow(dead_code)] // each generator uses a different part of it
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Picks an index by weights.
    pub fn weighted(&mut self, weights: &[u64]) -> usize {
        let mut roll = self.below(weights.iter().sum());
        for (i, w) in weights.iter().enumerate() {
            if roll < *w {
                return i;
            }
            roll -= w;
        }
        weights.len() - 1
    }

    /// A UUID-shaped id.
    pub fn id(&mut self) -> String {
        format!(
            "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
            self.next() as u32,
            self.below(1 << 16),
            self.below(1 << 12),
            self.below(1 << 12),
            self.below(1 << 48)
        )
    }
}
