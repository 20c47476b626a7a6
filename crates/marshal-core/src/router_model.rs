// Written by scripts/train-router.sh: do not edit. The weights are in router-model.bin.
pub const SCALE: f32 = 5.822425e-5;
pub const BIAS: [f32; 4] = [2.595595e-1, 5.1616233e-2, -7.925058e-2, -5.1503175e-1];
pub static WEIGHTS: [u8; super::BUCKETS * 8] = *include_bytes!("router-model.bin");
