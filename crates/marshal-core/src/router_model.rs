// Written by scripts/train-router.sh: do not edit. The weights are in router-model.bin.
pub const SCALE: f32 = 6.143233e-5;
pub const BIAS: [f32; 4] = [2.4301417e-1, 1.8576981e-2, -7.363672e-2, -5.0431156e-1];
pub static WEIGHTS: [u8; super::BUCKETS * 8] = *include_bytes!("router-model.bin");
