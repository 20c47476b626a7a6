// Written by scripts/train-router.sh: do not edit. The weights are in router-model.bin.
pub const SCALE: f32 = 1.4399883e-2;
pub const BIAS: [f32; 4] = [2.7522495e-1, 5.3743627e-2, -9.982828e-2, -4.7958377e-1];
pub static WEIGHTS: [u8; super::BUCKETS * 4] = *include_bytes!("router-model.bin");
