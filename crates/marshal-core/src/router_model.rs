// Written by scripts/train-router.sh: do not edit. The weights are in router-model.bin.
pub const SCALE: f32 = 5.2456722e-5;
pub const BIAS: [f32; 4] = [2.9929644e-1, 2.6214441e-2, -1.1214948e-1, -4.618845e-1];
pub static WEIGHTS: [u8; super::BUCKETS * 8] = *include_bytes!("router-model.bin");
