//! A multiplicative hasher for the registry's and the table's integer keys.
//!
//! The keys are descriptor numbers and sequential buffer ids, chosen by this process, not
//! by a peer, so SipHash's flooding resistance buys nothing; on a 12-byte message it was
//! the largest user-space cost of `blight_send_zerocopy` (about 600 instructions).
use std::hash::{BuildHasherDefault, Hasher};

#[derive(Default, Clone, Copy)]
pub struct IntHasher(u64);

impl Hasher for IntHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        // Fibonacci hashing: a bijection that spreads sequential keys over every bit.
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn write_i32(&mut self, n: i32) {
        self.write_u64(n as u32 as u64);
    }
}

pub type IntMap<K, V> = std::collections::HashMap<K, V, BuildHasherDefault<IntHasher>>;
