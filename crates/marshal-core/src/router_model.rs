// Written by scripts/train-router.sh: do not edit. The weights are in router-model.bin.
pub const SCALE: f32 = 5.7712215e-5;
pub const BIAS: [f32; 4] = [2.78042e-1, -8.72274e-3, -9.4332255e-2, -4.445012e-1];
pub static WEIGHTS: [u8; super::BUCKETS * 8] = *include_bytes!("router-model.bin");
