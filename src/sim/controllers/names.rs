//! Generated names: random suffixes from a seeded generator and the pod-template-hash.

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use serde_json::Value;

/// The alphabet of generated names: consonants and digits that cannot spell words
/// (`alphanums` in apimachinery `pkg/util/rand/rand.go`).
const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// A seeded source of generated names, so the same seed gives the same names every run.
#[derive(Debug, Clone)]
pub struct NameGen {
    rng: StdRng,
}

impl NameGen {
    /// A generator seeded with `seed`.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// `n` random characters of the generated-name alphabet (as `utilrand.String(n)`).
    pub fn suffix(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| {
                let i = (self.rng.next_u32() as usize) % ALPHANUMS.len();
                char::from(ALPHANUMS[i])
            })
            .collect()
    }

    /// A name as the API server makes it from `generateName`: the base (cut to 58 bytes, as
    /// `names.SimpleNameGenerator` does) followed by five random characters.
    pub fn generate_name(&mut self, base: &str) -> String {
        let mut cut = base.len().min(58);
        while !base.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}{}", &base[..cut], self.suffix(5))
    }

    /// `n` random lowercase hexadecimal digits (volume handles, attachment names).
    pub fn hex(&mut self, n: usize) -> String {
        const HEX: &[u8] = b"0123456789abcdef";
        (0..n)
            .map(|_| char::from(HEX[(self.rng.next_u32() as usize) % 16]))
            .collect()
    }
}

/// Maps each byte of `s` into the generated-name alphabet (`rand.SafeEncodeString`), so a
/// decimal hash becomes a string like `7854ff8877`.
#[must_use]
pub fn safe_encode(s: &str) -> String {
    s.bytes()
        .map(|b| char::from(ALPHANUMS[usize::from(b) % ALPHANUMS.len()]))
        .collect()
}

/// 32-bit FNV-1a, the hash the real controllers use for template hashes.
pub(crate) fn fnv32a(bytes: &[u8]) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for b in bytes {
        hash ^= u32::from(*b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

/// Writes `v` as JSON with object keys sorted, so equal objects hash equally whatever the
/// map implementation's order.
pub(crate) fn canonical_json(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(Value::String((*k).clone()).to_string().as_bytes());
                out.push(b':');
                if let Some(child) = map.get(*k) {
                    canonical_json(child, out);
                }
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                canonical_json(item, out);
            }
            out.push(b']');
        }
        other => out.extend_from_slice(other.to_string().as_bytes()),
    }
}

/// The `pod-template-hash` of a pod template.
///
/// The real controller (`controller.ComputeHash`) hashes the Go struct's `%#v` dump with
/// FNV-32a, mixes in `collisionCount`, and safe-encodes the decimal result. The Go dump cannot
/// be reproduced outside Go, so this is a deterministic equivalent: FNV-32a over the template's
/// canonical JSON (keys sorted), then the collision count as four little-endian bytes, then the
/// same safe encoding. Hashes therefore look like real ones (`7854ff8877`) and change exactly
/// when the template changes, but differ from a real cluster's for the same template.
#[must_use]
pub fn pod_template_hash(template: &Value, collision_count: Option<i64>) -> String {
    let mut bytes = Vec::new();
    canonical_json(template, &mut bytes);
    if let Some(count) = collision_count {
        // Truncation to 32 bits mirrors the real `uint32(*collisionCount)`.
        let c = count as u32;
        bytes.extend_from_slice(&c.to_le_bytes());
    }
    safe_encode(&fnv32a(&bytes).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn safe_encoding_maps_digits_like_the_real_one() {
        // '0'..'9' map to 4 5 6 7 8 9 b c d f, as real hashes such as "7854ff8877" show.
        assert_eq!(safe_encode("0123456789"), "456789bcdf");
    }

    #[test]
    fn fnv32a_matches_reference_vectors() {
        assert_eq!(fnv32a(b""), 0x811c_9dc5);
        assert_eq!(fnv32a(b"a"), 0xe40c_292c);
        assert_eq!(fnv32a(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn template_hash_is_stable_and_sensitive() {
        let a = json!({"metadata": {"labels": {"app": "x", "b": "y"}}, "spec": {"containers": [{"name": "c", "image": "i:1"}]}});
        let b = json!({"spec": {"containers": [{"image": "i:1", "name": "c"}]}, "metadata": {"labels": {"b": "y", "app": "x"}}});
        let c = json!({"metadata": {"labels": {"app": "x", "b": "y"}}, "spec": {"containers": [{"name": "c", "image": "i:2"}]}});
        assert_eq!(pod_template_hash(&a, None), pod_template_hash(&b, None));
        assert_ne!(pod_template_hash(&a, None), pod_template_hash(&c, None));
        assert_ne!(pod_template_hash(&a, None), pod_template_hash(&a, Some(1)));
        assert!(
            pod_template_hash(&a, None)
                .chars()
                .all(|ch| "456789bcdf".contains(ch))
        );
    }

    #[test]
    fn names_are_reproducible_from_the_seed() {
        let mut one = NameGen::new(7);
        let mut two = NameGen::new(7);
        let a = one.generate_name("web-7854ff8877-");
        assert_eq!(a, two.generate_name("web-7854ff8877-"));
        assert_eq!(a.len(), "web-7854ff8877-".len() + 5);
        assert!(a[15..].bytes().all(|b| ALPHANUMS.contains(&b)));
    }
}
