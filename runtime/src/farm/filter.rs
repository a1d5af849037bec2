//! The scan filter: before any responder, it decides whether a connection is answered.
//!
//! A *probe* is a connection from a source to a (telescope address, port) the source has not
//! been answered on. Each source's first N probes are admitted; a connection to an (address,
//! port) already admitted for that source is a follow-up and keeps being answered (a worm's
//! second session, the exploit after the probe); later probes are filtered: the caller resets
//! them without reading. So a scanner probing two ports of each address (masscan
//! `-p445,139`) spends two of its N on every address, as it would on two machines. Most of a
//! telescope's probes come from a few sources sweeping many addresses, so answering only
//! their first few is what lets a few honeypots serve a whole prefix (GQ reported a gain of
//! about 15x at N = 4).
//!
//! Memory is fixed: a table of `capacity` slots of [`ENTRY_BYTES`] (56) each, allocated at
//! start, in shards (one lock each, so threads rarely meet) of 4-way buckets; a bucket's keys,
//! times and counts share one cache line, each source's admitted pairs are apart. A new source
//! takes an empty slot of its bucket, or one whose source was idle longer than the window
//! (forgotten), or else evicts the bucket's least recently seen source (counted). An evicted
//! source that comes back starts afresh: at worst it is answered N more times, so a flood of
//! spoofed sources costs answers, never memory.
//!
//! The admitted (address, port) pairs of a source are kept inline as keyed 32-bit hashes (an
//! exact pair would take 6 bytes for IPv4, 18 for IPv6: 60 or 180 bytes for ten). A collision
//! (a new pair whose hash equals one of the source's at most N admitted ones, chance N / 2^32
//! per probe) answers that probe as a follow-up: one connection answered that should not have
//! been. The key is random per run, so a source cannot aim for one.

use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;

/// The most probes per source the filter can admit (the width of an entry's address array).
pub const MAX_N: usize = 10;

/// Entries per bucket: a new source may take any slot of its bucket.
const WAYS: usize = 4;

/// What the caller does with a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterDecision {
    /// A probe within the source's first N: answer it.
    Admit,
    /// A connection to an (address, port) already admitted for this source: answer it.
    FollowUp,
    /// A probe past the source's N: reset it without reading. Holds how many probes the
    /// source has made in the window (saturating), for the log.
    Filtered(u16),
}

impl FilterDecision {
    /// Whether the connection is answered.
    pub fn answered(self) -> bool {
        !matches!(self, FilterDecision::Filtered(_))
    }

    /// Its name in metrics and events.
    pub fn name(self) -> &'static str {
        match self {
            FilterDecision::Admit => "admit",
            FilterDecision::FollowUp => "follow_up",
            FilterDecision::Filtered(_) => "filtered",
        }
    }
}

/// Sources a [`Tally`] keeps apart per interval; the rest are summed together.
pub const MAX_TALLIED: usize = 4096;

/// The filter's decisions of one report interval by source address, for the event store (a
/// row per source and interval, not per probe). Bounded: a flood of spoofed sources past
/// [`MAX_TALLIED`] lands in one row without a source.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    by_source: std::collections::HashMap<IpAddr, [u64; 3]>,
    rest: [u64; 3],
}

/// One row of a [`Tally`]: `source` is `None` for the sources past [`MAX_TALLIED`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TallyRow {
    pub source: Option<IpAddr>,
    pub admitted: u64,
    pub follow_ups: u64,
    pub filtered: u64,
}

impl Tally {
    pub fn add(&mut self, source: IpAddr, d: FilterDecision) {
        let i = match d {
            FilterDecision::Admit => 0,
            FilterDecision::FollowUp => 1,
            FilterDecision::Filtered(_) => 2,
        };
        let full = self.by_source.len() >= MAX_TALLIED;
        match self.by_source.get_mut(&source) {
            Some(c) => c[i] += 1,
            None if full => self.rest[i] += 1,
            None => {
                let mut c = [0; 3];
                c[i] = 1;
                self.by_source.insert(source, c);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.by_source.is_empty() && self.rest == [0; 3]
    }

    /// Its rows, by source (the rest last); `[admitted, follow-ups, filtered]` summed.
    pub fn rows(&self) -> (Vec<TallyRow>, [u64; 3]) {
        let row = |source, c: &[u64; 3]| TallyRow {
            source,
            admitted: c[0],
            follow_ups: c[1],
            filtered: c[2],
        };
        let mut rows: Vec<TallyRow> = self
            .by_source
            .iter()
            .map(|(s, c)| row(Some(*s), c))
            .collect();
        rows.sort_by_key(|r| r.source);
        if self.rest != [0; 3] {
            rows.push(row(None, &self.rest));
        }
        let mut sum = self.rest;
        for c in self.by_source.values() {
            for (t, v) in sum.iter_mut().zip(c) {
                *t += v;
            }
        }
        (rows, sum)
    }
}

/// One connection as the filter sees it.
#[derive(Debug, Clone, Copy)]
pub struct Probe {
    pub source: IpAddr,
    /// The telescope address and port it reached: a pair not admitted before is a probe.
    pub telescope: SocketAddr,
    /// Seconds on any clock that does not go back (Unix time in the farm, trace time in
    /// `filter-gain`).
    pub now: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FilterConfigError {
    #[error("[filter] n = {0}: at most {MAX_N}")]
    TooManyProbes(usize),
    #[error("[filter] ipv4_prefix = {0}: between 1 and 32")]
    V4Prefix(u8),
    #[error("[filter] ipv6_prefix = {0}: between 1 and 64 (a source is at most a /64)")]
    V6Prefix(u8),
    #[error("[filter] capacity = {0}: at least {min}", min = WAYS)]
    Capacity(usize),
}

/// The filter's settings (`[filter]` in the farm's configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterConfig {
    /// Probes answered per source; 0 turns the filter off (everything is admitted).
    pub n: usize,
    /// Source granularity: sources in one IPv4 /`ipv4_prefix` are one source.
    pub ipv4_prefix: u8,
    /// The same for IPv6 (at most 64).
    pub ipv6_prefix: u8,
    /// A source idle this long is forgotten (its next probe starts afresh).
    pub window: Duration,
    /// Sources tracked at most (rounded up to a whole number of buckets per shard).
    pub capacity: usize,
}

impl Default for FilterConfig {
    fn default() -> Self {
        FilterConfig {
            n: 4,
            ipv4_prefix: 32,
            ipv6_prefix: 64,
            window: Duration::from_secs(24 * 3600),
            capacity: 1 << 20,
        }
    }
}

impl FilterConfig {
    pub fn check(&self) -> Result<(), FilterConfigError> {
        if self.n > MAX_N {
            return Err(FilterConfigError::TooManyProbes(self.n));
        }
        if !(1..=32).contains(&self.ipv4_prefix) {
            return Err(FilterConfigError::V4Prefix(self.ipv4_prefix));
        }
        if !(1..=64).contains(&self.ipv6_prefix) {
            return Err(FilterConfigError::V6Prefix(self.ipv6_prefix));
        }
        if self.capacity < WAYS {
            return Err(FilterConfigError::Capacity(self.capacity));
        }
        Ok(())
    }
}

/// A bucket's sources, all in one cache line: a lookup reads this line, then the found
/// source's admitted pairs (kept apart, in [`Table::admitted`]).
#[derive(Debug, Clone, Copy, Default)]
#[repr(C, align(64))]
struct Head {
    /// The sources' prefixes (see [`ScanFilter::source_key`]).
    keys: [u64; WAYS],
    /// When each was last seen (the probe's `now`, truncated to 32 bits: wraps in 136 years).
    seen: [u32; WAYS],
    /// Probes in the window, saturating; 0 marks an empty slot.
    probes: [u16; WAYS],
    /// How many of its admitted pairs are in use.
    answered: [u8; WAYS],
}

/// A shard's bucket heads in pages of their own, mapped fresh from the kernel: they read as
/// zero (empty heads) and stay out of the farm's RSS until a source lands in them. A boxed
/// slice would not: the allocator zeroes a 64-byte-aligned allocation by writing it, every
/// page at start (16 MiB at the default capacity).
struct Heads {
    ptr: std::ptr::NonNull<Head>,
    len: usize,
}

// SAFETY: `Heads` owns its mapping as a `Box<[Head]>` owns its allocation, and `Head` is
// plain integers.
unsafe impl Send for Heads {}
// SAFETY: as above; shared access only reads.
unsafe impl Sync for Heads {}

impl Heads {
    /// `n` empty heads.
    fn new(n: usize) -> Heads {
        let layout = std::alloc::Layout::array::<Head>(n).expect("a table that fits in memory");
        if n == 0 {
            return Heads {
                ptr: std::ptr::NonNull::dangling(),
                len: 0,
            };
        }
        // SAFETY: an anonymous private mapping of the table's size, at an address the kernel
        // chooses; nothing else refers to it.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                layout.size(),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        match std::ptr::NonNull::new(p.cast::<Head>()) {
            Some(ptr) if p != libc::MAP_FAILED => Heads { ptr, len: n },
            _ => std::alloc::handle_alloc_error(layout),
        }
    }
}

impl std::ops::Deref for Heads {
    type Target = [Head];
    fn deref(&self) -> &[Head] {
        // SAFETY: the mapping holds `len` heads, page-aligned (so aligned for `Head`), zero
        // (a valid, empty `Head`) until written through `deref_mut`; it lives as long as self.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl std::ops::DerefMut for Heads {
    fn deref_mut(&mut self) -> &mut [Head] {
        // SAFETY: as in `deref`; `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Heads {
    fn drop(&mut self) {
        if self.len > 0 {
            // SAFETY: unmaps exactly the mapping `new` made; no reference to it outlives self.
            unsafe {
                libc::munmap(
                    self.ptr.as_ptr().cast(),
                    self.len * std::mem::size_of::<Head>(),
                );
            }
        }
    }
}

/// The (address, port) pairs admitted for one source, hashed ([`ScanFilter::pair_key`]).
type Admitted = [u32; MAX_N];

/// The bytes one tracked source takes in the table: its share of a bucket's head and its
/// admitted pairs (56).
pub const ENTRY_BYTES: usize = std::mem::size_of::<Head>() / WAYS + std::mem::size_of::<Admitted>();

/// A shard's table; its own cache lines, so shards locked by different threads do not share.
#[repr(align(64))]
struct Shard(Mutex<Table>);

struct Table {
    heads: Heads,
    /// Slot `WAYS * bucket + way`'s admitted pairs.
    admitted: Box<[Admitted]>,
    tracked: usize,
    evicted: u64,
    forgotten: u64,
}

/// What the table holds and has dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FilterStats {
    /// Slots in use (a forgotten source keeps its slot until a new one takes it).
    pub tracked: usize,
    /// Slots in all.
    pub capacity: usize,
    /// Sources pushed out by a new one while still within the window.
    pub evicted: u64,
    /// Slots of sources idle past the window taken by new ones.
    pub forgotten: u64,
}

impl FilterStats {
    /// The table's bytes in use.
    pub fn bytes(&self) -> usize {
        self.tracked * ENTRY_BYTES
    }
}

/// The scan filter; share it between threads (`Arc<ScanFilter>`).
pub struct ScanFilter {
    n: u8,
    v4_mask: u32,
    v6_mask: u64,
    window: u32,
    seed: u64,
    /// Buckets per shard, minus one (a power of two).
    bucket_mask: usize,
    shard_bits: u32,
    shards: Box<[Shard]>,
}

impl std::fmt::Debug for ScanFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScanFilter")
            .field("n", &self.n)
            .field("window", &self.window)
            .field("shards", &self.shards.len())
            .field("stats", &self.stats())
            .finish()
    }
}

/// A 64-bit mixer (splitmix64's finaliser): sources spread evenly over buckets.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl ScanFilter {
    /// A filter with a random hash key: a spoofer cannot aim its sources at one bucket.
    pub fn new(config: &FilterConfig) -> Result<ScanFilter, FilterConfigError> {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(0x5ca9);
        Self::with_seed(config, h.finish())
    }

    /// A filter whose bucket placement (and so its evictions) is fixed by `seed`: for
    /// measurements that must repeat.
    pub fn with_seed(config: &FilterConfig, seed: u64) -> Result<ScanFilter, FilterConfigError> {
        config.check()?;
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        // About 4 shards a core, fewer for small tables; a power of two.
        let buckets = config.capacity.div_ceil(WAYS).next_power_of_two();
        let shards = (threads * 4).next_power_of_two().min(buckets);
        let per_shard = buckets / shards;
        let shards: Box<[Shard]> = (0..shards)
            .map(|_| {
                Shard(Mutex::new(Table {
                    heads: Heads::new(per_shard),
                    admitted: vec![[0; MAX_N]; per_shard * WAYS].into_boxed_slice(),
                    tracked: 0,
                    evicted: 0,
                    forgotten: 0,
                }))
            })
            .collect();
        Ok(ScanFilter {
            n: config.n as u8,
            v4_mask: u32::MAX << (32 - u32::from(config.ipv4_prefix)),
            v6_mask: u64::MAX << (64 - u32::from(config.ipv6_prefix)),
            window: u32::try_from(config.window.as_secs()).unwrap_or(u32::MAX),
            seed,
            bucket_mask: per_shard - 1,
            shard_bits: shards.len().trailing_zeros(),
            shards,
        })
    }

    /// Whether it filters at all (`n > 0`).
    pub fn enabled(&self) -> bool {
        self.n > 0
    }

    /// The source's prefix as a key: an IPv4 prefix with bit 32 set (IPv6 keys with that
    /// pattern are in 0:1::/32, which is not routed), an IPv6 /64 (or shorter) as itself.
    fn source_key(&self, ip: IpAddr) -> u64 {
        match ip.to_canonical() {
            IpAddr::V4(a) => (1 << 32) | u64::from(u32::from(a) & self.v4_mask),
            IpAddr::V6(a) => ((u128::from(a) >> 64) as u64) & self.v6_mask,
        }
    }

    /// The telescope (address, port) as an entry keeps it: a keyed 32-bit hash.
    fn pair_key(&self, telescope: SocketAddr) -> u32 {
        let port = u64::from(telescope.port());
        let h = match telescope.ip().to_canonical() {
            IpAddr::V4(a) => mix(((u64::from(u32::from(a)) << 16) | port) ^ self.seed),
            IpAddr::V6(a) => {
                let v = u128::from(a);
                mix((v as u64) ^ mix((v >> 64) as u64 ^ self.seed) ^ port.rotate_left(48))
            }
        };
        (h >> 32) as u32
    }

    /// Decides one connection.
    pub fn decide(&self, probe: &Probe) -> FilterDecision {
        if self.n == 0 {
            return FilterDecision::Admit;
        }
        let key = self.source_key(probe.source);
        let pair = self.pair_key(probe.telescope);
        let now = probe.now as u32;
        let h = mix(key ^ self.seed);
        let shard = if self.shard_bits == 0 {
            0
        } else {
            (h >> (64 - self.shard_bits)) as usize
        };
        let bucket = (h as usize) & self.bucket_mask;
        let mut t = match self.shards[shard].0.lock() {
            Ok(t) => t,
            Err(poisoned) => poisoned.into_inner(),
        };
        let way = t.slot(bucket, key, now, self.window);
        let Table {
            heads, admitted, ..
        } = &mut *t;
        let head = &mut heads[bucket];
        let admitted = &mut admitted[bucket * WAYS + way];
        head.seen[way] = now;
        let used = usize::from(head.answered[way]);
        if admitted[..used].contains(&pair) {
            return FilterDecision::FollowUp;
        }
        head.probes[way] = head.probes[way].saturating_add(1);
        if used < usize::from(self.n) {
            admitted[used] = pair;
            head.answered[way] += 1;
            FilterDecision::Admit
        } else {
            FilterDecision::Filtered(head.probes[way])
        }
    }

    /// The table's counts, summed over its shards.
    pub fn stats(&self) -> FilterStats {
        let mut s = FilterStats::default();
        for shard in self.shards.iter() {
            let t = match shard.0.lock() {
                Ok(t) => t,
                Err(poisoned) => poisoned.into_inner(),
            };
            s.tracked += t.tracked;
            s.capacity += t.admitted.len();
            s.evicted += t.evicted;
            s.forgotten += t.forgotten;
        }
        s
    }
}

impl Table {
    /// The way of `key` in `bucket`: its own, or one cleared for it (empty, forgotten, or the
    /// least recently seen one's, evicted).
    fn slot(&mut self, bucket: usize, key: u64, now: u32, window: u32) -> usize {
        let h = &self.heads[bucket];
        let idle = |i: usize| now.wrapping_sub(h.seen[i]) > window;
        if let Some(i) = (0..WAYS).find(|&i| h.probes[i] > 0 && h.keys[i] == key) {
            if !idle(i) {
                return i;
            }
            self.forgotten += 1;
            self.clear(bucket, i, key);
            return i;
        }
        let i = if let Some(i) = (0..WAYS).find(|&i| h.probes[i] == 0) {
            self.tracked += 1;
            i
        } else if let Some(i) = (0..WAYS).find(|&i| idle(i)) {
            self.forgotten += 1;
            i
        } else {
            self.evicted += 1;
            (0..WAYS)
                .max_by_key(|&i| now.wrapping_sub(h.seen[i]))
                .unwrap_or(0)
        };
        self.clear(bucket, i, key);
        i
    }

    /// Gives a slot to `key`, afresh.
    fn clear(&mut self, bucket: usize, way: usize, key: u64) {
        let h = &mut self.heads[bucket];
        h.keys[way] = key;
        h.probes[way] = 0;
        h.answered[way] = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn probe(src: [u8; 4], dst: [u8; 4], port: u16, now: u64) -> Probe {
        Probe {
            source: IpAddr::V4(Ipv4Addr::from(src)),
            telescope: SocketAddr::new(IpAddr::V4(Ipv4Addr::from(dst)), port),
            now,
        }
    }

    #[test]
    fn mapped_heads_are_empty_heads() {
        let d = Head::default();
        let mut heads = Heads::new(5);
        for h in heads.iter() {
            assert_eq!(
                (h.keys, h.seen, h.probes, h.answered),
                (d.keys, d.seen, d.probes, d.answered)
            );
        }
        heads[4].keys[1] = 7;
        assert_eq!(heads[4].keys, [0, 7, 0, 0]);
        assert!(Heads::new(0).is_empty());
    }

    fn filter(n: usize) -> ScanFilter {
        ScanFilter::with_seed(
            &FilterConfig {
                n,
                capacity: 1024,
                window: Duration::from_secs(600),
                ..FilterConfig::default()
            },
            7,
        )
        .unwrap()
    }

    #[test]
    fn a_source_takes_at_most_64_bytes() {
        assert_eq!(std::mem::size_of::<Head>(), 64, "one cache line a bucket");
        let per_source = std::mem::size_of::<Head>() / WAYS + std::mem::size_of::<Admitted>();
        assert!(per_source <= 64, "{per_source}");
        assert_eq!(ENTRY_BYTES, per_source);
    }

    #[test]
    fn first_n_probes_admitted_follow_ups_answered_the_rest_filtered() {
        let f = filter(4);
        let s = [203, 0, 113, 9];
        for i in 1..=4 {
            assert_eq!(
                f.decide(&probe(s, [198, 18, 0, i], 445, 10)),
                FilterDecision::Admit
            );
        }
        assert_eq!(
            f.decide(&probe(s, [198, 18, 0, 5], 445, 11)),
            FilterDecision::Filtered(5)
        );
        // The worm's second session is a follow-up; another port of the same machine is a
        // probe of its own.
        assert_eq!(
            f.decide(&probe(s, [198, 18, 0, 2], 445, 12)),
            FilterDecision::FollowUp
        );
        assert_eq!(
            f.decide(&probe(s, [198, 18, 0, 2], 139, 12)),
            FilterDecision::Filtered(6)
        );
        assert_eq!(
            f.decide(&probe(s, [198, 18, 0, 6], 445, 13)),
            FilterDecision::Filtered(7)
        );
        // Another source is its own.
        assert_eq!(
            f.decide(&probe([203, 0, 113, 10], [198, 18, 0, 5], 445, 13)),
            FilterDecision::Admit
        );
        // Idle past the window: forgotten, answered afresh.
        assert_eq!(
            f.decide(&probe(s, [198, 18, 0, 7], 445, 13 + 601)),
            FilterDecision::Admit
        );
        assert_eq!(f.stats().forgotten, 1);
    }

    #[test]
    fn a_probe_is_a_new_address_and_port_pair() {
        let f = filter(2);
        let s = [203, 0, 113, 9];
        // masscan -p445,139: two ports of one address are two probes.
        assert_eq!(
            f.decide(&probe(s, [198, 18, 0, 1], 445, 1)),
            FilterDecision::Admit
        );
        assert_eq!(
            f.decide(&probe(s, [198, 18, 0, 1], 139, 1)),
            FilterDecision::Admit
        );
        assert_eq!(
            f.decide(&probe(s, [198, 18, 0, 2], 445, 1)),
            FilterDecision::Filtered(3)
        );
        // Both admitted pairs keep being answered, however often.
        for _ in 0..3 {
            for port in [445, 139] {
                assert_eq!(
                    f.decide(&probe(s, [198, 18, 0, 1], port, 2)),
                    FilterDecision::FollowUp
                );
            }
        }
        // IPv6 the same way.
        let f = filter(1);
        let p = |port| Probe {
            source: "2001:db8:1::1".parse().unwrap(),
            telescope: SocketAddr::new("2001:db8:ff::1".parse().unwrap(), port),
            now: 1,
        };
        assert_eq!(f.decide(&p(445)), FilterDecision::Admit);
        assert_eq!(f.decide(&p(445)), FilterDecision::FollowUp);
        assert_eq!(f.decide(&p(139)), FilterDecision::Filtered(2));
    }

    #[test]
    fn zero_turns_it_off() {
        let f = filter(0);
        for i in 0..20 {
            assert_eq!(
                f.decide(&probe([1, 2, 3, 4], [198, 18, 1, i], 80, 1)),
                FilterDecision::Admit
            );
        }
        assert_eq!(f.stats().tracked, 0);
    }

    #[test]
    fn a_slash_24_is_one_source_when_configured() {
        let f = ScanFilter::with_seed(
            &FilterConfig {
                n: 1,
                ipv4_prefix: 24,
                capacity: 64,
                ..FilterConfig::default()
            },
            1,
        )
        .unwrap();
        assert_eq!(
            f.decide(&probe([192, 0, 2, 1], [198, 18, 0, 1], 80, 0)),
            FilterDecision::Admit
        );
        assert_eq!(
            f.decide(&probe([192, 0, 2, 200], [198, 18, 0, 2], 80, 0)),
            FilterDecision::Filtered(2)
        );
        assert_eq!(
            f.decide(&probe([192, 0, 3, 1], [198, 18, 0, 2], 80, 0)),
            FilterDecision::Admit
        );
    }

    #[test]
    fn ipv6_sources_by_slash_64() {
        let f = filter(1);
        let p = |src: &str, dst: &str| Probe {
            source: src.parse().unwrap(),
            telescope: SocketAddr::new(dst.parse().unwrap(), 445),
            now: 5,
        };
        assert_eq!(
            f.decide(&p("2001:db8:1:2::1", "2001:db8:ff::1")),
            FilterDecision::Admit
        );
        assert_eq!(
            f.decide(&p("2001:db8:1:2::99", "2001:db8:ff::2")),
            FilterDecision::Filtered(2)
        );
        assert_eq!(
            f.decide(&p("2001:db8:1:2::99", "2001:db8:ff::1")),
            FilterDecision::FollowUp
        );
        assert_eq!(
            f.decide(&p("2001:db8:1:3::1", "2001:db8:ff::2")),
            FilterDecision::Admit
        );
    }

    #[test]
    fn a_million_spoofed_sources_leave_the_table_at_its_capacity() {
        let f = ScanFilter::with_seed(
            &FilterConfig {
                capacity: 1 << 16,
                ..FilterConfig::default()
            },
            3,
        )
        .unwrap();
        let total = 1_000_000u32;
        for i in 0..total {
            let d = f.decide(&probe(
                (0x0100_0000 + i).to_be_bytes(),
                [198, 18, 0, 1],
                445,
                100,
            ));
            assert_eq!(d, FilterDecision::Admit);
        }
        let s = f.stats();
        assert_eq!(s.capacity, 1 << 16);
        assert_eq!(s.tracked, s.capacity);
        assert_eq!(s.evicted, u64::from(total) - s.capacity as u64);
        assert_eq!(s.forgotten, 0);
        assert_eq!(s.bytes(), (1 << 16) * ENTRY_BYTES);
    }

    #[test]
    fn a_tally_is_bounded() {
        let mut t = Tally::default();
        for i in 0..(MAX_TALLIED as u32 + 10) {
            t.add(IpAddr::V4(Ipv4Addr::from(i)), FilterDecision::Filtered(5));
        }
        t.add(IpAddr::V4(Ipv4Addr::from(0)), FilterDecision::Admit);
        let (rows, sum) = t.rows();
        assert_eq!(rows.len(), MAX_TALLIED + 1);
        assert_eq!(rows[0].source, Some(IpAddr::V4(Ipv4Addr::from(0))));
        assert_eq!((rows[0].admitted, rows[0].filtered), (1, 1));
        let last = rows.last().unwrap();
        assert_eq!((last.source, last.filtered), (None, 10));
        assert_eq!(sum, [1, 0, MAX_TALLIED as u64 + 10]);
    }

    #[test]
    fn settings_are_checked() {
        let bad = |c: FilterConfig| ScanFilter::new(&c).err();
        assert_eq!(
            bad(FilterConfig {
                n: 11,
                ..FilterConfig::default()
            }),
            Some(FilterConfigError::TooManyProbes(11))
        );
        assert_eq!(
            bad(FilterConfig {
                ipv6_prefix: 65,
                ..FilterConfig::default()
            }),
            Some(FilterConfigError::V6Prefix(65))
        );
    }
}
