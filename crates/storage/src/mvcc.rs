//! Multi-version values. Every replicated key keeps its versions, newest first, under
//! `escaped(user_key) | !wall_ns | !logical` in the `data` column family, so all versions of a
//! key are adjacent and a seek to `(key, ts)` lands on the newest version at or below `ts`.
//! A value is `0x01 | bytes`, or `0x00` for a deletion (tombstone).
//!
//! Reads at a timestamp see, for each key, the newest version at or below it; with an uncertainty
//! limit, a version above the read timestamp but at or below the limit makes the read fail with
//! the version's timestamp, because it may have been written before the read started (clocks of
//! different nodes differ by up to the maximum offset).
//!
//! Write intents (provisional values of a multi-range transaction between its prepare and its
//! resolution) live in the slot of timestamp [`INTENT_TS`], which sorts before every version of
//! the key: `0x02 | postcard(Intent)`. A read that meets an intent whose prepare timestamp is
//! at or below its read timestamp (or uncertainty limit) cannot know the outcome and fails with
//! [`MvccError::Intent`]; the gateway resolves it and reads again. Newer intents are skipped:
//! their commit timestamp will be above the read. Validation of read spans ignores intents
//! (the range state machine checks them separately, with [`intent_in_span`]).
//!
//! Not handled here: garbage collection of old versions (history grows until a GC TTL exists).

use crate::{Batch, Cf, Engine, Result, StorageError};
use meridian_types::Timestamp;
use meridian_types::keys::{KeyReader, encode_bytes};
use meridian_types::kv::{Intent, TxnMeta};

const TOMBSTONE: u8 = 0;
const VALUE: u8 = 1;
const INTENT: u8 = 2;

/// The version slot that holds a key's write intent.
pub const INTENT_TS: Timestamp = Timestamp::MAX;

/// The MVCC key of `user_key` at `ts`.
pub fn mvcc_key(user_key: &[u8], ts: Timestamp) -> Vec<u8> {
    let mut k = Vec::with_capacity(user_key.len() + 14);
    encode_bytes(&mut k, user_key);
    k.extend_from_slice(&(!ts.wall_ns).to_be_bytes());
    k.extend_from_slice(&(!ts.logical).to_be_bytes());
    k
}

/// Splits an MVCC key into user key and timestamp.
pub fn decode_mvcc_key(k: &[u8]) -> Result<(Vec<u8>, Timestamp)> {
    let bad = |_| StorageError::Corrupt("mvcc key".into());
    let mut r = KeyReader::new(k);
    let user = r.decode_bytes().map_err(bad)?;
    let rest = r.remaining();
    if rest.len() != 12 {
        return Err(StorageError::Corrupt("mvcc key timestamp".into()));
    }
    let wall = !u64::from_be_bytes(rest[..8].try_into().map_err(|_| StorageError::Corrupt("ts".into()))?);
    let logical = !u32::from_be_bytes(rest[8..].try_into().map_err(|_| StorageError::Corrupt("ts".into()))?);
    Ok((user, Timestamp::new(wall, logical)))
}

/// The `data` family bounds that hold every version of every user key in `[start, end)`.
pub fn data_bounds(start: &[u8], end: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut s = Vec::with_capacity(start.len() + 2);
    encode_bytes(&mut s, start);
    // The escaped form of `start` without its terminator sorts before every version of `start`.
    s.truncate(s.len() - 2);
    let mut e = Vec::with_capacity(end.len() + 2);
    encode_bytes(&mut e, end);
    e.truncate(e.len() - 2);
    (s, e)
}

/// Adds a version of `key` at `ts` to `batch` (`None` = deletion).
pub fn put(batch: &mut Batch, engine: &Engine, key: &[u8], ts: Timestamp, value: Option<&[u8]>) {
    let mk = mvcc_key(key, ts);
    match value {
        Some(v) => {
            let mut buf = Vec::with_capacity(v.len() + 1);
            buf.push(VALUE);
            buf.extend_from_slice(v);
            batch.put(engine, Cf::Data, &mk, &buf);
        }
        None => batch.put(engine, Cf::Data, &mk, &[TOMBSTONE]),
    }
}

/// Lays `intent` on `key` (replacing any intent there).
pub fn put_intent(batch: &mut Batch, engine: &Engine, key: &[u8], intent: &Intent) {
    let mut buf = vec![INTENT];
    buf.extend_from_slice(&postcard::to_stdvec(intent).unwrap_or_default());
    batch.put(engine, Cf::Data, &mvcc_key(key, INTENT_TS), &buf);
}

/// Removes the intent on `key`.
pub fn clear_intent(batch: &mut Batch, engine: &Engine, key: &[u8]) {
    batch.delete(engine, Cf::Data, &mvcc_key(key, INTENT_TS));
}

fn decode_intent(v: &[u8]) -> Result<Intent> {
    match v.split_first() {
        Some((&INTENT, rest)) => postcard::from_bytes(rest).map_err(|e| StorageError::Corrupt(format!("intent: {e}"))),
        _ => Err(StorageError::Corrupt("intent tag".into())),
    }
}

/// The intent on `key`, if any (a point read).
pub fn get_intent(engine: &Engine, key: &[u8]) -> Result<Option<Intent>> {
    engine.get(Cf::Data, &mvcc_key(key, INTENT_TS))?.map(|v| decode_intent(&v)).transpose()
}

/// The first intent in `[start, end)` whose key `skip` does not reject, with its key.
pub fn intent_in_span(engine: &Engine, start: &[u8], end: &[u8], skip: impl Fn(&[u8]) -> bool) -> Result<Option<(Vec<u8>, Intent)>> {
    let (lo, hi) = data_bounds(start, end);
    for item in engine.iter(Cf::Data, &lo, &hi) {
        let (k, v) = item?;
        if k.ends_with(&[0u8; 12]) {
            let (user, vts) = decode_mvcc_key(&k)?;
            if vts == INTENT_TS && !skip(&user) {
                return Ok(Some((user, decode_intent(&v)?)));
            }
        }
    }
    Ok(None)
}

fn decode_value(v: &[u8]) -> Result<Option<Vec<u8>>> {
    match v.split_first() {
        Some((&VALUE, rest)) => Ok(Some(rest.to_vec())),
        Some((&TOMBSTONE, _)) => Ok(None),
        _ => Err(StorageError::Corrupt("mvcc value tag".into())),
    }
}

/// Outcome of an MVCC read.
#[derive(Debug, PartialEq, Eq)]
pub enum MvccError {
    /// A version newer than the read but within the uncertainty limit exists.
    Uncertain(Timestamp),
    /// An unresolved intent at or below the read (or uncertainty) timestamp.
    Intent(Vec<u8>, TxnMeta),
    Storage(String),
}

impl From<StorageError> for MvccError {
    fn from(e: StorageError) -> Self {
        MvccError::Storage(e.to_string())
    }
}

/// Reads one key at `ts`.
pub fn get(engine: &Engine, key: &[u8], ts: Timestamp, uncertainty: Option<Timestamp>) -> std::result::Result<Option<Vec<u8>>, MvccError> {
    let (rows, _) = scan(engine, key, &meridian_types::keys::key_next(key), ts, uncertainty, 1)?;
    Ok(rows.into_iter().next().map(|(_, v)| v))
}

/// Up to `limit` (0 = all) visible key/values in `[start, end)` at `ts`, in key order, and the key
/// to resume from when the limit was reached.
#[allow(clippy::type_complexity)]
pub fn scan(
    engine: &Engine,
    start: &[u8],
    end: &[u8],
    ts: Timestamp,
    uncertainty: Option<Timestamp>,
    limit: usize,
) -> std::result::Result<(Vec<(Vec<u8>, Vec<u8>)>, Option<Vec<u8>>), MvccError> {
    let (lo, hi) = data_bounds(start, end);
    let mut rows = Vec::new();
    // The user key whose visible version has been decided; later (older) versions are skipped.
    let mut decided: Option<Vec<u8>> = None;
    let limit_ts = uncertainty.unwrap_or(ts).max(ts);
    for item in engine.iter(Cf::Data, &lo, &hi) {
        let (k, v) = item?;
        let (user, vts) = decode_mvcc_key(&k)?;
        if decided.as_deref() == Some(user.as_slice()) {
            continue;
        }
        if vts == INTENT_TS {
            let intent = decode_intent(&v)?;
            if intent.prepare_ts <= limit_ts {
                return Err(MvccError::Intent(user, intent.txn));
            }
            continue; // commits above the read: look at the versions below it
        }
        if vts > limit_ts {
            continue; // written after the read, certainly: invisible
        }
        if vts > ts {
            return Err(MvccError::Uncertain(vts));
        }
        if limit != 0 && rows.len() >= limit {
            return Ok((rows, Some(user)));
        }
        if let Some(val) = decode_value(&v)? {
            rows.push((user.clone(), val));
        }
        decided = Some(user);
    }
    Ok((rows, None))
}

/// Bytes (keys and values) of every version and intent of the user keys in `[start, end)`,
/// counted by a scan: O(span), for statistics shown on demand.
pub fn span_bytes(engine: &Engine, start: &[u8], end: &[u8]) -> Result<u64> {
    let (lo, hi) = data_bounds(start, end);
    let mut total = 0u64;
    for kv in engine.iter(Cf::Data, &lo, &hi) {
        let (k, v) = kv?;
        total += (k.len() + v.len()) as u64;
    }
    Ok(total)
}

/// The bytes of `[start, end)` (as [`span_bytes`]) and the first user key, after the span's
/// first, at which at least half of them lie before it (None when the span holds fewer than two
/// keys): a point that divides the span about evenly without cutting a key's versions apart.
pub fn span_middle(engine: &Engine, start: &[u8], end: &[u8]) -> Result<(u64, Option<Vec<u8>>)> {
    let total = span_bytes(engine, start, end)?;
    let (lo, hi) = data_bounds(start, end);
    let mut seen = 0u64;
    let mut first: Option<Vec<u8>> = None;
    for kv in engine.iter(Cf::Data, &lo, &hi) {
        let (k, v) = kv?;
        let (user, _) = decode_mvcc_key(&k)?;
        match &first {
            None => first = Some(user),
            Some(f) if *f != user && seen * 2 >= total => return Ok((total, Some(user))),
            Some(_) => {}
        }
        seen += (k.len() + v.len()) as u64;
    }
    Ok((total, None))
}

/// The newest version timestamp in `[start, end)` that is above `ts`, if any: used to validate
/// that what a transaction read has not changed since it read it.
pub fn newer_version_in_span(engine: &Engine, start: &[u8], end: &[u8], ts: Timestamp) -> Result<Option<Timestamp>> {
    let (lo, hi) = data_bounds(start, end);
    let mut newest: Option<Timestamp> = None;
    let mut last_user: Option<Vec<u8>> = None;
    for item in engine.iter(Cf::Data, &lo, &hi) {
        let (k, _) = item?;
        let (user, vts) = decode_mvcc_key(&k)?;
        // Only the newest version of each key matters: it is the first one seen.
        if last_user.as_deref() == Some(user.as_slice()) || vts == INTENT_TS {
            continue;
        }
        if vts > ts {
            newest = Some(newest.map_or(vts, |n| n.max(vts)));
        }
        last_user = Some(user);
    }
    Ok(newest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(w: u64) -> Timestamp {
        Timestamp::new(w, 0)
    }

    fn setup() -> (tempfile::TempDir, Engine) {
        let dir = tempfile::tempdir().unwrap();
        let e = Engine::open(dir.path()).unwrap();
        let mut b = Batch::new();
        put(&mut b, &e, b"a", ts(10), Some(b"a10"));
        put(&mut b, &e, b"a", ts(20), Some(b"a20"));
        put(&mut b, &e, b"a", ts(30), None);
        put(&mut b, &e, b"b", ts(15), Some(b"b15"));
        put(&mut b, &e, b"ab", ts(5), Some(b"ab5"));
        put(&mut b, &e, b"c\x00", ts(40), Some(b"c40"));
        e.write(b).unwrap();
        (dir, e)
    }

    #[test]
    fn versions_are_visible_by_timestamp() {
        let (_d, e) = setup();
        assert_eq!(get(&e, b"a", ts(9), None).unwrap(), None);
        assert_eq!(get(&e, b"a", ts(10), None).unwrap(), Some(b"a10".to_vec()));
        assert_eq!(get(&e, b"a", ts(25), None).unwrap(), Some(b"a20".to_vec()));
        assert_eq!(get(&e, b"a", ts(30), None).unwrap(), None, "deleted at 30");
        assert_eq!(get(&e, b"ab", ts(100), None).unwrap(), Some(b"ab5".to_vec()));
    }

    #[test]
    fn scan_returns_newest_visible_in_key_order_with_resume() {
        let (_d, e) = setup();
        let (rows, resume) = scan(&e, b"a", b"z", ts(25), None, 0).unwrap();
        let keys: Vec<_> = rows.iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(keys, vec![b"a".to_vec(), b"ab".to_vec(), b"b".to_vec()]);
        assert_eq!(rows[0].1, b"a20");
        assert!(resume.is_none());
        let (rows, resume) = scan(&e, b"a", b"z", ts(100), None, 2).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].0, b"ab".to_vec(), "a is deleted at 30");
        assert_eq!(resume, Some(b"c\x00".to_vec()));
        let (rows, _) = scan(&e, b"ab", b"b", ts(100), None, 0).unwrap();
        assert_eq!(rows.len(), 1, "end is exclusive");
    }

    #[test]
    fn uncertainty_window_reports_the_version() {
        let (_d, e) = setup();
        assert_eq!(get(&e, b"b", ts(12), Some(ts(14))).unwrap(), None);
        assert_eq!(get(&e, b"b", ts(12), Some(ts(15))), Err(MvccError::Uncertain(ts(15))));
    }

    #[test]
    fn validation_finds_newer_versions() {
        let (_d, e) = setup();
        assert_eq!(newer_version_in_span(&e, b"a", b"b", ts(30)).unwrap(), None);
        assert_eq!(newer_version_in_span(&e, b"a", b"b", ts(29)).unwrap(), Some(ts(30)));
        assert_eq!(newer_version_in_span(&e, b"a", b"c", ts(14)).unwrap(), Some(ts(30)));
        assert_eq!(newer_version_in_span(&e, b"c", b"d", ts(50)).unwrap(), None);
    }

    #[test]
    fn mvcc_key_round_trips() {
        let k = mvcc_key(b"x\x00y", Timestamp::new(7, 3));
        assert_eq!(decode_mvcc_key(&k).unwrap(), (b"x\x00y".to_vec(), Timestamp::new(7, 3)));
        assert!(mvcc_key(b"x", ts(9)) < mvcc_key(b"x", ts(8)), "newest first");
    }

    #[test]
    fn intents_block_reads_at_or_above_their_prepare_timestamp() {
        let (_d, e) = setup();
        let txn = TxnMeta { id: 7, anchor_key: b"a".to_vec(), expires_ms: 0 };
        let mut b = Batch::new();
        put_intent(&mut b, &e, b"b", &Intent { txn: txn.clone(), prepare_ts: ts(50), value: Some(b"new".to_vec()) });
        e.write(b).unwrap();
        assert_eq!(get(&e, b"b", ts(49), None).unwrap(), Some(b"b15".to_vec()), "an intent above the read is skipped");
        assert_eq!(get(&e, b"b", ts(50), None), Err(MvccError::Intent(b"b".to_vec(), txn.clone())));
        assert_eq!(get(&e, b"b", ts(40), Some(ts(55))), Err(MvccError::Intent(b"b".to_vec(), txn.clone())), "within uncertainty");
        assert!(scan(&e, b"a", b"z", ts(60), None, 0).is_err());
        assert_eq!(newer_version_in_span(&e, b"b", b"c", ts(15)).unwrap(), None, "validation ignores intents");
        assert_eq!(get_intent(&e, b"b").unwrap().unwrap().txn, txn);
        assert_eq!(intent_in_span(&e, b"a", b"z", |_| false).unwrap().unwrap().0, b"b".to_vec());
        assert_eq!(intent_in_span(&e, b"a", b"z", |k| k == b"b").unwrap(), None);
        let mut b = Batch::new();
        clear_intent(&mut b, &e, b"b");
        put(&mut b, &e, b"b", ts(55), Some(b"new"));
        e.write(b).unwrap();
        assert_eq!(get(&e, b"b", ts(60), None).unwrap(), Some(b"new".to_vec()));
        assert_eq!(get_intent(&e, b"b").unwrap(), None);
    }

    #[test]
    fn the_middle_of_a_span_divides_its_bytes_at_a_key_boundary() {
        let dir = tempfile::tempdir().unwrap();
        let e = Engine::open(dir.path()).unwrap();
        let mut b = Batch::new();
        for k in 0u8..10 {
            // Key 2 has three versions: they stay together on one side.
            for v in 0..if k == 2 { 3 } else { 1 } {
                put(&mut b, &e, &[b'k', k], ts(10 + v), Some(b"0123456789"));
            }
        }
        e.write(b).unwrap();
        let (total, mid) = span_middle(&e, b"k", b"l").unwrap();
        assert_eq!(total, span_bytes(&e, b"k", b"l").unwrap());
        // 12 versions of equal size: half of them lie before key 4 (k0, k1, 3 x k2, k3).
        assert_eq!(mid, Some(vec![b'k', 4]));
        let (_, one) = span_middle(&e, &[b'k', 9], b"l").unwrap();
        assert_eq!(one, None, "a single key cannot be split");
        assert_eq!(span_middle(&e, b"x", b"y").unwrap(), (0, None));
    }
}
