//! Which identity tuples a source has already written to the identity zone: an exact
//! set of 128-bit fingerprints in bounded memory.
//!
//! Analytics sources write each distinct identity tuple once (one person has many
//! events). In a pooled extract the set stays small; in a patient-level extract (SUS,
//! ECDS) every row is a different person, and an in-memory set would grow with the
//! extract. So the set keeps at most [`SeenSet::limit`] fingerprints in memory; when
//! full, it writes them sorted to a run file in the spill directory and remembers them in
//! a blocked Bloom filter (about 10 bits each). A fingerprint the filter has never seen
//! is new for certain; one it may have seen is *deferred*: the row is set aside and
//! decided exactly at the end of the source against the run files ([`SeenSet::resolve`]).
//! A deferred fingerprint is remembered as *pending* (up to the same limit), so its later
//! rows are dropped at once: the deferred row decides for all of them. Deferred rows are
//! few: the filter's false positives (about 1% of new tuples) and the first repeat of
//! each tuple after its spill (every repeat, once `limit` fingerprints are pending).

use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::PathBuf;

/// The fingerprints are already hashes: use their low bits directly.
#[derive(Default, Clone, Copy)]
pub struct PassThrough(u64);

impl std::hash::Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes.iter().take(8) {
            self.0 = (self.0 << 8) | b as u64;
        }
    }
    fn write_u128(&mut self, v: u128) {
        self.0 = v as u64 ^ (v >> 64) as u64;
    }
}

type Fingerprints = HashSet<u128, std::hash::BuildHasherDefault<PassThrough>>;

/// What [`SeenSet::check`] says of a fingerprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Never seen: recorded now, the row is written.
    New,
    /// Seen before: the row is dropped.
    Seen,
    /// Perhaps seen before a spill: the row waits for [`SeenSet::resolve`].
    Maybe,
}

/// A blocked Bloom filter over fingerprints: all probes of a key in one 512-bit block.
struct Bloom {
    blocks: Vec<[u64; 8]>,
    capacity: usize,
}

const BLOOM_BITS_PER_KEY: usize = 10;
const BLOOM_PROBES: u32 = 7;

impl Bloom {
    fn new(capacity: usize) -> Bloom {
        let n = (capacity * BLOOM_BITS_PER_KEY).div_ceil(512).max(1);
        Bloom {
            blocks: vec![[0; 8]; n],
            capacity,
        }
    }
    fn probes(&self, fp: u128) -> (usize, impl Iterator<Item = u32> + use<>) {
        let hi = (fp >> 64) as u64;
        let block = ((hi as u128 * self.blocks.len() as u128) >> 64) as usize;
        let lo = fp as u64;
        (
            block,
            (0..BLOOM_PROBES).map(move |i| ((lo >> (i * 9)) & 511) as u32),
        )
    }
    fn insert(&mut self, fp: u128) {
        let (b, bits) = self.probes(fp);
        let block = &mut self.blocks[b];
        for bit in bits {
            block[(bit / 64) as usize] |= 1 << (bit % 64);
        }
    }
    fn may_contain(&self, fp: u128) -> bool {
        let (b, mut bits) = self.probes(fp);
        let block = &self.blocks[b];
        bits.all(|bit| block[(bit / 64) as usize] & (1 << (bit % 64)) != 0)
    }
}

/// The exact set of fingerprints written so far, in bounded memory.
pub struct SeenSet {
    current: Fingerprints,
    /// Deferred fingerprints, not yet decided (at most `limit`).
    pending: Fingerprints,
    /// Fingerprints kept in memory before spilling.
    pub limit: usize,
    dir: PathBuf,
    runs: Vec<PathBuf>,
    spilled: usize,
    bloom: Option<Bloom>,
}

impl SeenSet {
    /// A set spilling into `dir` (created on the first spill) above `limit` fingerprints.
    pub fn new(dir: PathBuf, limit: usize) -> SeenSet {
        SeenSet {
            current: Fingerprints::default(),
            pending: Fingerprints::default(),
            limit: limit.max(1),
            dir,
            runs: Vec::new(),
            spilled: 0,
            bloom: None,
        }
    }

    /// Whether `fp` was seen; records it when it certainly was not. A fingerprint
    /// already deferred counts as seen: its first deferred row decides.
    pub fn check(&mut self, fp: u128) -> std::io::Result<Verdict> {
        if self.current.contains(&fp) || self.pending.contains(&fp) {
            return Ok(Verdict::Seen);
        }
        if self.bloom.as_ref().is_some_and(|b| b.may_contain(fp)) {
            if self.pending.len() < self.limit {
                self.pending.insert(fp);
            }
            return Ok(Verdict::Maybe);
        }
        self.current.insert(fp);
        if self.current.len() >= self.limit {
            self.spill()?;
        }
        Ok(Verdict::New)
    }

    /// Write the in-memory fingerprints as a sorted run and add them to the filter
    /// (rebuilt four times larger, from the runs, when it is full).
    fn spill(&mut self) -> std::io::Result<()> {
        let mut v: Vec<u128> = self.current.drain().collect();
        v.sort_unstable();
        std::fs::create_dir_all(&self.dir)?;
        let path = self.dir.join(format!("run-{:04}.bin", self.runs.len()));
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path)?);
        for x in &v {
            f.write_all(&x.to_le_bytes())?;
        }
        f.flush()?;
        self.runs.push(path);
        self.spilled += v.len();
        let full = self
            .bloom
            .as_ref()
            .is_none_or(|b| self.spilled > b.capacity);
        if full {
            let mut bloom = Bloom::new((4 * self.spilled).max(8 * self.limit));
            for run in &self.runs {
                for x in read_run(run)? {
                    bloom.insert(x);
                }
            }
            self.bloom = Some(bloom);
        } else if let Some(b) = &mut self.bloom {
            for x in v {
                b.insert(x);
            }
        }
        Ok(())
    }

    /// Of deferred fingerprints (in row order), which rows are new: in no run, not in
    /// memory, and the first of their kind. The new ones join the set, so that a later
    /// call (the next chunk of deferred rows) finds them. Each run is read once per call.
    pub fn resolve(&mut self, deferred: &[u128]) -> std::io::Result<Vec<bool>> {
        // Deciding has begun: the pending set has done its work (a fingerprint deferred
        // again after this is decided again, against the set that now holds it).
        self.pending = Fingerprints::default();
        let mut seen: Vec<bool> = deferred.iter().map(|x| self.current.contains(x)).collect();
        let mut order: Vec<usize> = (0..deferred.len()).collect();
        order.sort_unstable_by_key(|&i| deferred[i]);
        for run in &self.runs {
            mark_present(&read_run(run)?, deferred, &order, &mut seen);
        }
        Ok(deferred
            .iter()
            .zip(seen)
            .map(|(x, s)| !s && self.current.insert(*x))
            .collect())
    }

    /// How many times the set spilled to disk.
    pub fn spills(&self) -> usize {
        self.runs.len()
    }

    /// Remove the run files.
    pub fn clear(&mut self) {
        for r in self.runs.drain(..) {
            let _ = std::fs::remove_file(r);
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

impl Drop for SeenSet {
    fn drop(&mut self) {
        self.clear();
    }
}

/// Mark the deferred fingerprints that the sorted `run` holds, in one merge pass over
/// both (`order` visits `deferred` in ascending order): a binary search per deferred
/// fingerprint and run would miss the cache on every probe.
fn mark_present(run: &[u128], deferred: &[u128], order: &[usize], seen: &mut [bool]) {
    let mut j = 0;
    for &i in order {
        let x = deferred[i];
        while j < run.len() && run[j] < x {
            j += 1;
        }
        if run.get(j) == Some(&x) {
            seen[i] = true;
        }
    }
}

fn read_run(path: &std::path::Path) -> std::io::Result<Vec<u128>> {
    let file = std::fs::File::open(path)?;
    let n = file.metadata()?.len() as usize / 16;
    let mut r = std::io::BufReader::with_capacity(1 << 20, file);
    let mut run = Vec::with_capacity(n);
    let mut x = [0u8; 16];
    for _ in 0..n {
        r.read_exact(&mut x)?;
        run.push(u128::from_le_bytes(x));
    }
    Ok(run)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(i: u64) -> u128 {
        // Spread like real fingerprints.
        let a = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (i >> 7);
        let b = i.wrapping_mul(0xc2b2_ae3d_27d4_eb4f).rotate_left(17);
        ((a as u128) << 64) | b as u128
    }

    #[test]
    fn exact_across_spills() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SeenSet::new(dir.path().join("seen"), 1000);
        let mut written = 0;
        let mut deferred = Vec::new();
        // 10 000 distinct fingerprints, each three times, in two passes.
        for pass in 0..3 {
            for i in 0..10_000u64 {
                let x = fp(i + u64::from(pass == 2) * 5_000);
                match s.check(x).unwrap() {
                    Verdict::New => written += 1,
                    Verdict::Seen => {}
                    Verdict::Maybe => deferred.push(x),
                }
            }
        }
        assert!(s.runs.len() >= 9, "it spilled");
        assert!(s.current.len() < 1000, "memory stays bounded");
        let new = s.resolve(&deferred).unwrap();
        written += new.iter().filter(|x| **x).count();
        // 0..10 000 plus 10 000..15 000 from the third pass.
        assert_eq!(written, 15_000);
        s.clear();
        assert!(!dir.path().join("seen").exists());
    }

    #[test]
    fn a_repeat_after_a_spill_is_deferred_once_and_decided_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SeenSet::new(dir.path().join("seen"), 10);
        for i in 0..10 {
            assert_eq!(s.check(fp(i)).unwrap(), Verdict::New);
        }
        assert_eq!(s.spills(), 1);
        // The filter holds every spilled fingerprint: its first repeat waits, the
        // next ones are dropped at once, and the deferred row is decided as seen.
        assert_eq!(s.check(fp(3)).unwrap(), Verdict::Maybe);
        assert_eq!(s.check(fp(3)).unwrap(), Verdict::Seen);
        assert_eq!(s.check(fp(3)).unwrap(), Verdict::Seen);
        assert_eq!(s.resolve(&[fp(3)]).unwrap(), vec![false]);
        // A fingerprint decided new joins the set, so a later chunk finds it.
        assert_eq!(s.resolve(&[fp(99), fp(99)]).unwrap(), vec![true, false]);
        assert_eq!(s.resolve(&[fp(99)]).unwrap(), vec![false]);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Whatever the order, the limit and the chunking of the deferred rows, each
        /// distinct fingerprint is written exactly once.
        #[test]
        fn each_fingerprint_is_written_exactly_once(
            rows in proptest::collection::vec(0u64..400, 0..3_000),
            limit in 1usize..60,
            chunk in 1usize..500,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut s = SeenSet::new(dir.path().join("seen"), limit);
            let mut written: Vec<u128> = Vec::new();
            let mut deferred = Vec::new();
            for r in &rows {
                match s.check(fp(*r)).unwrap() {
                    Verdict::New => written.push(fp(*r)),
                    Verdict::Seen => {}
                    Verdict::Maybe => deferred.push(fp(*r)),
                }
            }
            for part in deferred.chunks(chunk) {
                let new = s.resolve(part).unwrap();
                written.extend(part.iter().zip(new).filter(|(_, n)| *n).map(|(x, _)| *x));
            }
            let distinct: HashSet<u128> = rows.iter().map(|r| fp(*r)).collect();
            let mut once = written.clone();
            once.sort_unstable();
            once.dedup();
            proptest::prop_assert_eq!(once.len(), written.len(), "written twice");
            proptest::prop_assert_eq!(once.into_iter().collect::<HashSet<_>>(), distinct);
        }
    }

    #[test]
    fn the_merge_finds_exactly_what_a_search_finds() {
        let run: Vec<u128> = {
            let mut v: Vec<u128> = (0..2_000).map(|i| fp(i) % 5_000).collect();
            v.sort_unstable();
            v
        };
        // Unsorted, with repeats, some in the run and some not.
        let deferred: Vec<u128> = (0..3_000).map(|i| fp(i * 7) % 5_000).collect();
        let mut order: Vec<usize> = (0..deferred.len()).collect();
        order.sort_unstable_by_key(|&i| deferred[i]);
        let mut seen = vec![false; deferred.len()];
        mark_present(&run, &deferred, &order, &mut seen);
        let want: Vec<bool> = deferred
            .iter()
            .map(|x| run.binary_search(x).is_ok())
            .collect();
        assert_eq!(seen, want);
        assert!(want.iter().any(|x| *x) && want.iter().any(|x| !*x));
    }

    #[test]
    fn the_filter_has_few_false_positives() {
        let mut b = Bloom::new(100_000);
        for i in 0..100_000 {
            b.insert(fp(i));
        }
        assert!((0..100_000).all(|i| b.may_contain(fp(i))));
        let fps = (100_000..200_000).filter(|i| b.may_contain(fp(*i))).count();
        assert!(fps < 3_000, "{fps} false positives in 100 000");
    }
}
