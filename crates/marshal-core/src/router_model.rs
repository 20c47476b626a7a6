// Written by scripts/train-router.sh: do not edit. The weights are in router-model.bin.
pub const SCALE: f32 = 1.4094655e-2;
pub const BIAS: [f32; 4] = [2.3605773e-1, 3.5975713e-3, -7.900408e-2, -4.7526625e-1];
pub static WEIGHTS: [u8; super::BUCKETS * 4] = *include_bytes!("router-model.bin");
