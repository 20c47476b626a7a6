// Written by scripts/train-router.sh: do not edit. The weights are in router-model.bin.
pub const SCALE: f32 = 1.426596e-2;
pub const BIAS: [f32; 4] = [2.9465067e-1, 6.484615e-2, -9.001475e-2, -4.8781437e-1];
pub static WEIGHTS: [u8; super::BUCKETS * 4] = *include_bytes!("router-model.bin");
