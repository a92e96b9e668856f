//! JSON configurations: the decoder's (`--config`, Python `config=`), the generator's and the
//! hybrid rule's.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = lightweight_decoder::DecoderConfig::from_json(text) {
        assert!(config.validate().is_ok());
    }
    if let Ok(config) =
        serde_json::from_str::<lightweight_decoder::generative::GenerativeConfig>(text)
    {
        let _ = config.validate();
    }
    if let Ok(config) = serde_json::from_str::<lightweight_decoder::HybridConfig>(text) {
        let _ = config.validate();
    }
});
