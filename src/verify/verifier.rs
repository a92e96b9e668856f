//! [`Verifier`]: re-embeds texts with an encoder, remembering what it has embedded.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use lru::LruCache;

use crate::encoder::Encoder;
use crate::error::{Error, Result};

/// Re-embeds texts with an [`Encoder`], remembering what it has embedded.
pub struct Verifier {
    encoder: Arc<dyn Encoder>,
    cache: Option<Mutex<LruCache<String, Arc<[f32]>>>>,
    calls: AtomicU64,
}

impl Verifier {
    /// A verifier over `encoder` remembering up to `cache_capacity` texts.
    pub fn new(encoder: Arc<dyn Encoder>, cache_capacity: usize) -> Self {
        Verifier {
            encoder,
            cache: NonZeroUsize::new(cache_capacity).map(|c| Mutex::new(LruCache::new(c))),
            calls: AtomicU64::new(0),
        }
    }

    /// The encoder.
    pub fn encoder(&self) -> &Arc<dyn Encoder> {
        &self.encoder
    }

    /// Texts the encoder has embedded so far (cache hits are free).
    pub fn encoder_calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// The unit-norm embeddings of `texts`, in order: remembered ones from the cache, the
    /// others in one encoder batch.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Arc<[f32]>>> {
        let mut found: Vec<Option<Arc<[f32]>>> = match &self.cache {
            Some(cache) => {
                let mut cache = lock(cache)?;
                texts.iter().map(|t| cache.get(*t).cloned()).collect()
            }
            None => vec![None; texts.len()],
        };
        // texts to embed, first appearance first, each once
        let mut missing: Vec<&str> = Vec::new();
        let mut slot: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        for (t, f) in texts.iter().zip(&found) {
            if f.is_none() {
                slot.entry(t).or_insert_with(|| {
                    missing.push(t);
                    missing.len() - 1
                });
            }
        }
        if !missing.is_empty() {
            let rows = self.encoder.embed(&missing)?;
            self.calls
                .fetch_add(missing.len() as u64, Ordering::Relaxed);
            let fresh: Vec<Arc<[f32]>> =
                rows.rows().into_iter().map(|r| r.to_vec().into()).collect();
            if let Some(cache) = &self.cache {
                let mut cache = lock(cache)?;
                for (t, e) in missing.iter().zip(&fresh) {
                    cache.put((*t).to_string(), e.clone());
                }
            }
            for (t, f) in texts.iter().zip(found.iter_mut()) {
                if f.is_none() {
                    *f = slot.get(t).map(|&i| fresh[i].clone());
                }
            }
        }
        found
            .into_iter()
            .map(|f| f.ok_or_else(|| Error::Internal("a text was not embedded".into())))
            .collect()
    }
}

fn lock<T>(m: &Mutex<T>) -> Result<std::sync::MutexGuard<'_, T>> {
    m.lock()
        .map_err(|_| Error::Internal("the verifier's cache lock is poisoned".into()))
}
