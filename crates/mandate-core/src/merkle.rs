//! Merkle trees as RFC 9162 (Certificate Transparency 2.0) section 2.1
//! defines them, for witness reports (docs/protocol.md, 4.10): a witness
//! signs the head of a tree of its receipts once, and each receipt travels
//! with the audit path that includes it under that head.
//!
//! The leaf hash is `SHA-256(0x00 || data)`, an interior node's
//! `SHA-256(0x01 || left || right)`, and a tree of `n > 1` leaves splits at
//! the largest power of two below `n`. The known roots and proofs of
//! RFC 6962's reference data are this module's tests.

use sha2::{Digest as _, Sha256};

/// A node's hash.
pub type Hash = [u8; 32];

/// The hash of a leaf whose input is `data`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The largest power of two strictly below `n`, for `n > 1`.
fn split(n: usize) -> usize {
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// The tree head of `leaves` (leaf hashes, in order): RFC 9162's `MTH`.
/// The empty tree's is the SHA-256 of nothing.
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves {
        [] => Sha256::digest([]).into(),
        [leaf] => *leaf,
        _ => {
            let k = split(leaves.len());
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// The tree head of `leaves` and every leaf's audit path (RFC 9162's
/// `PATH(m, D[n])`, nearest sibling first), in one pass.
pub fn root_and_paths(leaves: &[Hash]) -> (Hash, Vec<Vec<Hash>>) {
    fn build(leaves: &[Hash], paths: &mut [Vec<Hash>]) -> Hash {
        if let [leaf] = leaves {
            return *leaf;
        }
        let k = split(leaves.len());
        let (left_paths, right_paths) = paths.split_at_mut(k);
        let left = build(&leaves[..k], left_paths);
        let right = build(&leaves[k..], right_paths);
        left_paths.iter_mut().for_each(|p| p.push(right));
        right_paths.iter_mut().for_each(|p| p.push(left));
        node_hash(&left, &right)
    }
    if leaves.is_empty() {
        return (root(leaves), Vec::new());
    }
    let mut paths = vec![Vec::new(); leaves.len()];
    let head = build(leaves, &mut paths);
    (head, paths)
}

/// Whether `path` proves that `leaf` is leaf `index` of the tree of `size`
/// leaves whose head is `root`: RFC 9162 section 2.1.3.2, step by step.
/// A path of the wrong length, an index at or past `size`, or a fold that
/// ends anywhere but `root` is `false`.
pub fn included(leaf: &Hash, index: u64, size: u64, path: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut f_n, mut s_n) = (index, size - 1);
    let mut r = *leaf;
    for p in path {
        if s_n == 0 {
            return false;
        }
        if f_n & 1 == 1 || f_n == s_n {
            r = node_hash(p, &r);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    s_n == 0 && r == *root
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn hash(s: &str) -> Hash {
        unhex(s).try_into().unwrap()
    }

    /// RFC 6962's reference leaves, as the CT implementations test with.
    const DATA: [&str; 8] = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ];

    /// Their tree heads for 0 to 8 leaves.
    const ROOTS: [&str; 9] = [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    fn leaves() -> Vec<Hash> {
        DATA.iter().map(|d| leaf_hash(&unhex(d))).collect()
    }

    #[test]
    fn the_reference_tree_heads() {
        let leaves = leaves();
        for n in 0..=8 {
            assert_eq!(root(&leaves[..n]), hash(ROOTS[n]), "{n} leaves");
            assert_eq!(root_and_paths(&leaves[..n]).0, hash(ROOTS[n]), "{n} leaves");
        }
    }

    #[test]
    fn the_reference_audit_paths() {
        // RFC 6962's reference proofs, for leaves 0 and 5 of 8 (1 and 6
        // where they are counted from one).
        let cases = [
            (
                0,
                [
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                5,
                [
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
        ];
        let leaves = leaves();
        let (head, paths) = root_and_paths(&leaves);
        for (index, proof) in cases {
            let proof: Vec<Hash> = proof.iter().map(|p| hash(p)).collect();
            assert_eq!(paths[index], proof, "leaf {index}");
            assert!(included(&leaves[index], index as u64, 8, &proof, &head));
        }
    }

    #[test]
    fn every_leaf_of_every_size_is_included_and_nothing_else_is() {
        let all: Vec<Hash> = (0..100u8).map(|i| leaf_hash(&[i, i ^ 0x5a])).collect();
        for n in 1..=all.len() {
            let leaves = &all[..n];
            let (head, paths) = root_and_paths(leaves);
            assert_eq!(head, root(leaves));
            for (m, path) in paths.iter().enumerate() {
                let (m64, n64) = (m as u64, n as u64);
                assert!(included(&leaves[m], m64, n64, path, &head), "{m} of {n}");
                // Another leaf, another index, another head, an index past
                // the size, a path cut short, made longer or bent: each
                // fails. (The size alone is not bound: the last leaf's path
                // can fold the same for a larger size. A witness report
                // signs its size beside its root.)
                let other = leaf_hash(b"other");
                assert!(!included(&other, m64, n64, path, &head));
                if n > 1 {
                    let next = (m + 1) % n;
                    assert!(!included(&leaves[m], next as u64, n64, path, &head));
                }
                assert!(!included(&leaves[m], m64, n64, path, &leaf_hash(b"head")));
                assert!(!included(&leaves[m], n64, n64, path, &head));
                if let Some((_, shorter)) = path.split_last() {
                    assert!(!included(&leaves[m], m64, n64, shorter, &head));
                }
                let mut longer = path.clone();
                longer.push(other);
                assert!(!included(&leaves[m], m64, n64, &longer, &head));
                for i in 0..path.len() {
                    let mut bent = path.clone();
                    bent[i][0] ^= 1;
                    assert!(!included(&leaves[m], m64, n64, &bent, &head));
                }
            }
        }
    }
}
