//! [`PatternCache`]: an LRU cache of search results keyed by a quantised embedding signature.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use lru::LruCache;

use serde::{Deserialize, Serialize};

use super::bank::Hit;
use crate::error::{check, Result};

/// Settings of the pattern cache.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// Entries kept; 0 disables the cache.
    pub capacity: usize,
    /// Quantisation step of the signature (unit-norm components are rounded to multiples of it).
    pub quantization_step: f32,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            capacity: 4096,
            quantization_step: 1.0 / 256.0,
        }
    }
}

impl CacheConfig {
    /// Checks the values, naming the first one out of range.
    ///
    /// The LRU reserves room for `capacity` entries up front, so it is at most
    /// [`CacheConfig::MAX_CAPACITY`]; a step above [`CacheConfig::MAX_STEP`] would round the
    /// components of different unit embeddings (typically 0.03 in magnitude at 768-d) to the
    /// same signature and serve one input's results for another.
    pub fn validate(&self) -> Result<()> {
        check(
            self.capacity <= Self::MAX_CAPACITY,
            "cache.capacity must be at most 1048576 (the cache reserves its entries up front)",
        )?;
        check(
            self.quantization_step.is_finite()
                && self.quantization_step > 0.0
                && self.quantization_step <= Self::MAX_STEP,
            "cache.quantization_step must be in (0, 1/64]: a coarser step maps different inputs \
             to one cache entry",
        )
    }

    /// Largest `capacity`.
    pub const MAX_CAPACITY: usize = 1 << 20;
    /// Largest `quantization_step`.
    pub const MAX_STEP: f32 = 1.0 / 64.0;
}

/// Quantised embedding signature -> search results.
type Entries = LruCache<Box<[i16]>, Vec<Hit>>;

/// Caches the bank's search results for recently seen inputs.
///
/// The key is the unit-norm input rounded to multiples of a quantisation step, so inputs that
/// differ only by tiny numerical noise share an entry. Assembly still runs on every decode (its
/// result depends on the session), so the cache is correct for every method.
#[derive(Debug)]
pub struct PatternCache {
    entries: Option<Mutex<Entries>>,
    step: f32,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl PatternCache {
    /// A cache of `capacity` entries (0 disables it) with the given quantisation step.
    pub fn new(capacity: usize, step: f32) -> Self {
        PatternCache {
            entries: NonZeroUsize::new(capacity).map(|c| Mutex::new(LruCache::new(c))),
            step,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// Whether the cache keeps entries (a capacity of 0 disables it: no signature is needed).
    pub fn is_enabled(&self) -> bool {
        self.entries.is_some()
    }

    /// The signature of a unit-norm embedding.
    pub fn signature(&self, embedding: &[f32]) -> Box<[i16]> {
        embedding
            .iter()
            .map(|v| {
                (v / self.step)
                    .round()
                    .clamp(i16::MIN as f32, i16::MAX as f32) as i16
            })
            .collect()
    }

    /// The cached results for `signature`, counting a hit or a miss.
    pub fn get(&self, signature: &[i16]) -> Option<Vec<Hit>> {
        let entries = self.entries.as_ref()?;
        let found = lock(entries).get(signature).cloned();
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Stores results for `signature`, evicting the least recently used entry when full.
    pub fn put(&self, signature: Box<[i16]>, hits: Vec<Hit>) {
        if let Some(entries) = &self.entries {
            lock(entries).put(signature, hits);
        }
    }

    /// Removes every entry (call when the bank changes); counters are kept.
    pub fn clear(&self) {
        if let Some(entries) = &self.entries {
            lock(entries).clear();
        }
    }

    /// Number of cached entries.
    pub fn len(&self) -> usize {
        self.entries.as_ref().map_or(0, |e| lock(e).len())
    }

    /// Whether the cache holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Lookups that found an entry.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Lookups that found none.
    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }
}

/// Locks a mutex, recovering the data if another thread panicked while holding it (the cache
/// holds no invariant that a panic could break).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_identical_inputs_hit_and_lru_evicts() {
        let cache = PatternCache::new(2, 1.0 / 256.0);
        let a = [0.6f32, 0.8];
        let hit = vec![Hit {
            id: 7,
            similarity: 0.9,
        }];
        assert!(cache.get(&cache.signature(&a)).is_none());
        cache.put(cache.signature(&a), hit.clone());
        assert_eq!(cache.get(&cache.signature(&[0.60001, 0.79999])), Some(hit));
        cache.put(cache.signature(&[0.0, 1.0]), vec![]);
        cache.put(cache.signature(&[1.0, 0.0]), vec![]);
        assert!(cache.get(&cache.signature(&a)).is_none(), "evicted");
        assert_eq!((cache.hits(), cache.misses()), (1, 2));
        cache.clear();
        assert!(cache.is_empty());
    }
}
