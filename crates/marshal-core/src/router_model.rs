// Written by scripts/train-router.sh: do not edit. The weights are in router-model.bin.
pub const SCALE: f32 = 5.247735e-5;
pub const BIAS: [f32; 4] = [2.9820663e-1, 2.543712e-2, -1.118436e-1, -4.594001e-1];
pub static WEIGHTS: [u8; super::BUCKETS * 8] = *include_bytes!("router-model.bin");
