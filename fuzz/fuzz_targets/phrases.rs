//! A bank's phrases file (zstd-compressed or plain lines), read with a claimed count: the
//! input's first byte picks the kind and the count.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lightweight_decoder::phrase_bank::PhraseList;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Some((&head, body)) = data.split_first() else {
        return;
    };
    let compressed = head & 1 == 1;
    let count = usize::from(head >> 1);
    let dir = common::folder(&[("p", body)]);
    if let Ok(list) = PhraseList::read(&dir.path().join("p"), compressed, count) {
        assert_eq!(list.len(), count);
        assert_eq!(list.iter().count(), count);
    }
});
