// Written by scripts/train-router.sh: do not edit. The weights are in router-model.bin.
pub const SCALE: f32 = 1.538315e-2;
pub const BIAS: [f32; 4] = [2.9900658e-1, 1.23378456e-1, -1.19244635e-1, -5.5371577e-1];
pub static WEIGHTS: [u8; super::BUCKETS * 4] = *include_bytes!("router-model.bin");
