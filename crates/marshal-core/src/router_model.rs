// Written by scripts/train-router.sh: do not edit. The weights are in router-model.bin.
pub const SCALE: f32 = 1.5191604e-2;
pub const BIAS: [f32; 4] = [2.7416077e-1, 1.2424229e-1, -1.1379311e-1, -5.140855e-1];
pub static WEIGHTS: [u8; super::BUCKETS * 4] = *include_bytes!("router-model.bin");
