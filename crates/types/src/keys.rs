//! The one map of Meridian's keyspace and the one order-preserving encoding every key uses.
//!
//! Byte-wise comparison of encoded keys equals the logical order of the values encoded, so range
//! spans and scans work on raw bytes. Layout of the replicated (MVCC) keyspace:
//!
//! | prefix | what | range |
//! |---|---|---|
//! | `0x02` + end key | meta records: range descriptors keyed by their end key | system |
//! | `0x03 'k'` | cluster record (id, bootstrap) | system |
//! | `0x03 'c'` + name | id counters (node, range, replica, descriptor ids) | system |
//! | `0x03 'n'` + u64 | node records (address, locality) | system |
//! | `0x03 'd'` + bytes(db) | database descriptors | system |
//! | `0x03 't'` + bytes(db) + bytes(table) | table descriptors | system |
//! | `0x10` + u64 table + u32 index + columns | table rows and index entries | one per table |
//!
//! The system range covers `[KEY_MIN, 0x10)`; each table's range covers its table prefix.
//! Unreplicated, per-range keys (Raft log, vote, applied state) live in their own column
//! families, prefixed by the big-endian range id: see [`range_local`] and [`raft_log_key`].

use crate::{NodeId, RangeId};

pub const KEY_MIN: &[u8] = &[];
/// Exclusive upper bound of every key Meridian stores.
pub const KEY_MAX: &[u8] = &[0xff, 0xff];
pub const META_PREFIX: u8 = 0x02;
pub const SYSTEM_PREFIX: u8 = 0x03;
pub const TABLE_PREFIX: u8 = 0x10;

/// The system range's span: everything below the first table key.
pub fn system_span() -> (Vec<u8>, Vec<u8>) {
    (KEY_MIN.to_vec(), vec![TABLE_PREFIX])
}

pub fn meta_key(range_end: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(range_end.len() + 1);
    k.push(META_PREFIX);
    k.extend_from_slice(range_end);
    k
}

pub fn meta_span() -> (Vec<u8>, Vec<u8>) {
    (vec![META_PREFIX], vec![META_PREFIX + 1])
}

pub fn cluster_key() -> Vec<u8> {
    vec![SYSTEM_PREFIX, b'k']
}

pub fn counter_key(name: &str) -> Vec<u8> {
    let mut k = vec![SYSTEM_PREFIX, b'c'];
    encode_bytes(&mut k, name.as_bytes());
    k
}

/// The zone configuration of a table's ranges.
pub fn zone_key(table_id: u64) -> Vec<u8> {
    let mut k = vec![SYSTEM_PREFIX, b'z'];
    encode_u64(&mut k, table_id);
    k
}

/// A database's zone configuration, which its tables take when created.
pub fn database_zone_key(db: &str) -> Vec<u8> {
    let mut k = vec![SYSTEM_PREFIX, b'Z'];
    encode_bytes(&mut k, db.as_bytes());
    k
}

/// Marks a dropped table, so that nothing recreates the meta records of its ranges.
pub fn dropped_table_key(table_id: u64) -> Vec<u8> {
    let mut k = vec![SYSTEM_PREFIX, b'x'];
    encode_u64(&mut k, table_id);
    k
}

pub fn node_key(node: NodeId) -> Vec<u8> {
    let mut k = vec![SYSTEM_PREFIX, b'n'];
    encode_u64(&mut k, node);
    k
}

pub fn node_span() -> (Vec<u8>, Vec<u8>) {
    (vec![SYSTEM_PREFIX, b'n'], vec![SYSTEM_PREFIX, b'n' + 1])
}

pub fn database_key(db: &str) -> Vec<u8> {
    let mut k = vec![SYSTEM_PREFIX, b'd'];
    encode_bytes(&mut k, db.as_bytes());
    k
}

pub fn database_span() -> (Vec<u8>, Vec<u8>) {
    (vec![SYSTEM_PREFIX, b'd'], vec![SYSTEM_PREFIX, b'd' + 1])
}

pub fn table_desc_prefix(db: &str) -> Vec<u8> {
    let mut k = vec![SYSTEM_PREFIX, b't'];
    encode_bytes(&mut k, db.as_bytes());
    k
}

pub fn table_desc_key(db: &str, table: &str) -> Vec<u8> {
    let mut k = table_desc_prefix(db);
    encode_bytes(&mut k, table.as_bytes());
    k
}

/// The span holding all rows and indexes of one table.
pub fn table_span(table_id: u64) -> (Vec<u8>, Vec<u8>) {
    (table_prefix(table_id), table_prefix(table_id + 1))
}

pub fn table_prefix(table_id: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(16);
    k.push(TABLE_PREFIX);
    encode_u64(&mut k, table_id);
    k
}

pub fn index_prefix(table_id: u64, index_id: u32) -> Vec<u8> {
    let mut k = table_prefix(table_id);
    k.extend_from_slice(&index_id.to_be_bytes());
    k
}

/// The smallest key greater than every key that starts with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    KEY_MAX.to_vec()
}

/// The smallest key greater than `key`.
pub fn key_next(key: &[u8]) -> Vec<u8> {
    let mut k = key.to_vec();
    k.push(0);
    k
}

// ---- unreplicated, per-range keys (column families `raft_meta`, `range_meta`, `raft_log`) ----

/// Suffixes of range-local keys; the full key is `range_id (BE) | suffix`.
pub mod range_local {
    pub const VOTE: u8 = b'v';
    pub const LAST_PURGED: u8 = b'p';
    pub const COMMITTED: u8 = b'c';
    pub const REPLICA_ID: u8 = b'r';
    pub const TOMBSTONE: u8 = b't';
    pub const APPLIED: u8 = b'a';
    pub const MEMBERSHIP: u8 = b'm';
    pub const RANGE_STATE: u8 = b's';
}

pub fn range_local_key(range: RangeId, suffix: u8) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[..8].copy_from_slice(&range.to_be_bytes());
    k[8] = suffix;
    k
}

pub fn raft_log_key(range: RangeId, index: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&range.to_be_bytes());
    k[8..].copy_from_slice(&index.to_be_bytes());
    k
}

pub fn decode_raft_log_key(k: &[u8]) -> Option<(RangeId, u64)> {
    if k.len() != 16 {
        return None;
    }
    Some((u64::from_be_bytes(k[..8].try_into().ok()?), u64::from_be_bytes(k[8..].try_into().ok()?)))
}

// ---- value encodings (order-preserving) ----

pub fn encode_u64(buf: &mut Vec<u8>, v: u64) {
    buf.extend_from_slice(&v.to_be_bytes());
}

pub fn encode_i64(buf: &mut Vec<u8>, v: i64) {
    buf.extend_from_slice(&((v as u64) ^ (1 << 63)).to_be_bytes());
}

/// Floats order as numbers: -inf < negatives < -0 = 0 < positives < inf < NaN.
pub fn encode_f64(buf: &mut Vec<u8>, v: f64) {
    let v = if v == 0.0 { 0.0 } else { v }; // -0 and 0 are equal
    let bits = v.to_bits();
    let ordered = if bits >> 63 == 1 { !bits } else { bits | (1 << 63) };
    buf.extend_from_slice(&ordered.to_be_bytes());
}

pub fn encode_bool(buf: &mut Vec<u8>, v: bool) {
    buf.push(v as u8);
}

/// Byte strings: `0x00` is escaped as `0x00 0xff` and the string ends with `0x00 0x01`, so a
/// string sorts before every longer string it prefixes and concatenated keys stay ordered.
pub fn encode_bytes(buf: &mut Vec<u8>, v: &[u8]) {
    buf.reserve(v.len() + 2);
    for &b in v {
        if b == 0 {
            buf.extend_from_slice(&[0x00, 0xff]);
        } else {
            buf.push(b);
        }
    }
    buf.extend_from_slice(&[0x00, 0x01]);
}

/// A cursor over an encoded key; each `decode_*` consumes one value.
pub struct KeyReader<'a> {
    buf: &'a [u8],
}

/// An encoded key did not have the shape expected: data corruption or a programming error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed key encoding")]
pub struct BadKey;

impl<'a> KeyReader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        KeyReader { buf }
    }

    pub fn remaining(&self) -> &'a [u8] {
        self.buf
    }

    pub fn skip(&mut self, n: usize) -> Result<(), BadKey> {
        if self.buf.len() < n {
            return Err(BadKey);
        }
        self.buf = &self.buf[n..];
        Ok(())
    }

    fn take8(&mut self) -> Result<[u8; 8], BadKey> {
        if self.buf.len() < 8 {
            return Err(BadKey);
        }
        let (a, b) = self.buf.split_at(8);
        self.buf = b;
        a.try_into().map_err(|_| BadKey)
    }

    pub fn decode_u64(&mut self) -> Result<u64, BadKey> {
        Ok(u64::from_be_bytes(self.take8()?))
    }

    pub fn decode_i64(&mut self) -> Result<i64, BadKey> {
        Ok((u64::from_be_bytes(self.take8()?) ^ (1 << 63)) as i64)
    }

    pub fn decode_f64(&mut self) -> Result<f64, BadKey> {
        let ordered = u64::from_be_bytes(self.take8()?);
        let bits = if ordered >> 63 == 1 { ordered & !(1 << 63) } else { !ordered };
        Ok(f64::from_bits(bits))
    }

    pub fn decode_bool(&mut self) -> Result<bool, BadKey> {
        let (&b, rest) = self.buf.split_first().ok_or(BadKey)?;
        self.buf = rest;
        Ok(b != 0)
    }

    pub fn decode_bytes(&mut self) -> Result<Vec<u8>, BadKey> {
        let mut out = Vec::new();
        let mut i = 0;
        loop {
            let b = *self.buf.get(i).ok_or(BadKey)?;
            if b == 0 {
                match *self.buf.get(i + 1).ok_or(BadKey)? {
                    0xff => out.push(0),
                    0x01 => {
                        self.buf = &self.buf[i + 2..];
                        return Ok(out);
                    }
                    _ => return Err(BadKey),
                }
                i += 2;
            } else {
                out.push(b);
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc<T>(f: fn(&mut Vec<u8>, T), v: T) -> Vec<u8> {
        let mut b = Vec::new();
        f(&mut b, v);
        b
    }

    #[test]
    fn integers_order_and_round_trip() {
        let vals = [i64::MIN, -1_000_000, -1, 0, 1, 42, i64::MAX];
        for w in vals.windows(2) {
            assert!(enc(encode_i64, w[0]) < enc(encode_i64, w[1]), "{} < {}", w[0], w[1]);
        }
        for v in vals {
            assert_eq!(KeyReader::new(&enc(encode_i64, v)).decode_i64().unwrap(), v);
        }
    }

    #[test]
    fn floats_order_and_round_trip() {
        let vals = [f64::NEG_INFINITY, -1e300, -1.5, -0.0, 1e-300, 2.5, 1e300, f64::INFINITY];
        for w in vals.windows(2) {
            assert!(enc(encode_f64, w[0]) <= enc(encode_f64, w[1]), "{} <= {}", w[0], w[1]);
        }
        assert_eq!(enc(encode_f64, -0.0), enc(encode_f64, 0.0));
        for v in vals {
            let d = KeyReader::new(&enc(encode_f64, v)).decode_f64().unwrap();
            assert!(d == v, "{v} round-trips as {d}");
        }
    }

    #[test]
    fn byte_strings_order_with_prefixes_and_zero_bytes() {
        let vals: [&[u8]; 6] = [b"", b"\x00", b"\x00\x00", b"\x00\x01", b"a", b"ab"];
        for w in vals.windows(2) {
            assert!(enc(encode_bytes, w[0]) < enc(encode_bytes, w[1]), "{:?} < {:?}", w[0], w[1]);
        }
        // Composite keys: ("a", 2) < ("ab", 1) because "a" < "ab".
        let mut k1 = enc(encode_bytes, b"a".as_slice());
        encode_i64(&mut k1, 2);
        let mut k2 = enc(encode_bytes, b"ab".as_slice());
        encode_i64(&mut k2, 1);
        assert!(k1 < k2);
        let mut r = KeyReader::new(&k1);
        assert_eq!(r.decode_bytes().unwrap(), b"a");
        assert_eq!(r.decode_i64().unwrap(), 2);
        assert!(r.remaining().is_empty());
    }

    #[test]
    fn keyspace_regions_are_disjoint_and_ordered() {
        let (sys_start, sys_end) = system_span();
        assert!(meta_key(b"\x10zzz") >= sys_start && meta_key(b"\x10zzz") < sys_end);
        assert!(table_desc_key("db", "t") < sys_end);
        let (t1s, t1e) = table_span(1);
        let (t2s, _) = table_span(2);
        assert!(sys_end <= t1s && t1e <= t2s);
        assert!(index_prefix(1, 7) > t1s && index_prefix(1, 7) < t1e);
        assert_eq!(prefix_end(&[1, 0xff]), vec![2]);
        assert!(truncated_decode_fails());
    }

    fn truncated_decode_fails() -> bool {
        let k = enc(encode_bytes, b"abc".as_slice());
        KeyReader::new(&k[..k.len() - 1]).decode_bytes().is_err() && KeyReader::new(&[1, 2]).decode_u64().is_err()
    }
}
