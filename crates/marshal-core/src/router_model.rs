// Written by scripts/train-router.sh: do not edit. The weights are in router-model.bin.
pub const SCALE: f32 = 1.4987403e-2;
pub const BIAS: [f32; 4] = [2.7909943e-1, 1.0018993e-1, -1.15155116e-1, -5.4156935e-1];
pub static WEIGHTS: [u8; super::BUCKETS * 4] = *include_bytes!("router-model.bin");
