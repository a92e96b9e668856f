//! A record of the work decodes do, for tests and profiling: each input check
//! ([`UnitEmbedding::new`](crate::UnitEmbedding::new)), each bank search and each text scored
//! under the generator. Off until [`start`]; while on it records the decodes of every thread
//! of the process, so start it where nothing else decodes (a test binary of its own).
//! Off, each hook costs one relaxed atomic load.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// One piece of work.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// An input checked and scaled to unit norm.
    InputCheck,
    /// A FAISS search of a bank for this many queries.
    BankSearch {
        /// Queries searched at once.
        rows: usize,
    },
    /// A text scored under the generator given an input (a teacher-forced pass).
    Score {
        /// The text.
        text: String,
    },
}

static ON: AtomicBool = AtomicBool::new(false);
static EVENTS: Mutex<Vec<Event>> = Mutex::new(Vec::new());

/// Starts recording (and forgets what an earlier recording left).
pub fn start() {
    if let Ok(mut events) = EVENTS.lock() {
        events.clear();
    }
    ON.store(true, Ordering::SeqCst);
}

/// Stops recording and returns the events since [`start`], in order.
pub fn finish() -> Vec<Event> {
    ON.store(false, Ordering::SeqCst);
    EVENTS
        .lock()
        .map(|mut events| std::mem::take(&mut *events))
        .unwrap_or_default()
}

/// Records the event `make` describes, when recording.
pub(crate) fn record(make: impl FnOnce() -> Event) {
    if ON.load(Ordering::Relaxed) {
        if let Ok(mut events) = EVENTS.lock() {
            events.push(make());
        }
    }
}
