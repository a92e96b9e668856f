//! Tests of the GGUF reader: every value type, every version, and malformed headers.

use super::*;

/// A version-3 GGUF file: the metadata entries (key, type, value bytes), the tensors (name,
/// ggml type, dims outermost first, data) at 32-byte alignment.
fn file(metadata: &[(&str, u32, Vec<u8>)], tensors: &[(&str, u32, &[u64], &[u8])]) -> Vec<u8> {
    let mut out = b"GGUF".to_vec();
    out.extend(3u32.to_le_bytes());
    out.extend((tensors.len() as u64).to_le_bytes());
    out.extend((metadata.len() as u64).to_le_bytes());
    let string = |out: &mut Vec<u8>, s: &str| {
        out.extend((s.len() as u64).to_le_bytes());
        out.extend(s.as_bytes());
    };
    for (key, ty, value) in metadata {
        string(&mut out, key);
        out.extend(ty.to_le_bytes());
        out.extend(value);
    }
    let mut offset = 0u64;
    for (name, ty, dims, data) in tensors {
        string(&mut out, name);
        out.extend((dims.len() as u32).to_le_bytes());
        for d in dims.iter().rev() {
            out.extend(d.to_le_bytes());
        }
        out.extend(ty.to_le_bytes());
        out.extend(offset.to_le_bytes());
        offset += (data.len() as u64).next_multiple_of(32);
    }
    out.resize(out.len().next_multiple_of(32), 0);
    for (.., data) in tensors {
        out.extend(*data);
        out.resize(out.len().next_multiple_of(32), 0);
    }
    out
}

#[test]
fn version_1_has_32_bit_lengths() {
    let mut b = b"GGUF".to_vec();
    for v in [1u32, 0, 1, 1] {
        b.extend(v.to_le_bytes()); // version, tensors, metadata, key length
    }
    b.push(b'k');
    b.extend(8u32.to_le_bytes());
    b.extend(2u32.to_le_bytes());
    b.extend(b"v1");
    let header = parse(&b).unwrap();
    assert_eq!(header.version, 1);
    assert_eq!(header.metadata["k"], Value::String("v1".into()));
}

#[test]
fn type_identifiers_are_ggml_s() {
    for t in [GgmlType::F32, GgmlType::Q8_0, GgmlType::Q4_0] {
        assert_eq!(GgmlType::from_id(t.id()), Ok(t));
        assert_eq!(
            t.byte_len(64),
            Some(64 / t.block_size() as u64 * t.block_bytes() as u64)
        );
    }
    assert_eq!(GgmlType::Q4_0.id(), 2);
    assert_eq!(GgmlType::Q8_0.byte_len(33), None);
}

fn parse(bytes: &[u8]) -> Result<Header, String> {
    read_header(bytes, bytes.len() as u64)
}

fn string_value(s: &str) -> Vec<u8> {
    let mut v = (s.len() as u64).to_le_bytes().to_vec();
    v.extend(s.as_bytes());
    v
}

#[test]
fn reads_metadata_of_every_type_and_the_tensors() {
    let floats: Vec<u8> = [1.5f32, -2.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let mut q8 = vec![0x00, 0x3c]; // scale 1.0
    q8.extend((0..32u8).map(|i| i.wrapping_mul(7)));
    let mut array = 8u32.to_le_bytes().to_vec(); // of strings
    array.extend(2u64.to_le_bytes());
    array.extend(string_value("a"));
    array.extend(string_value("bc"));
    let metadata = [
        ("u8", 0, vec![7]),
        ("i8", 1, vec![0xff]),
        ("u16", 2, 7u16.to_le_bytes().to_vec()),
        ("i16", 3, (-7i16).to_le_bytes().to_vec()),
        ("u32", 4, 7u32.to_le_bytes().to_vec()),
        ("i32", 5, (-7i32).to_le_bytes().to_vec()),
        ("f32", 6, 0.5f32.to_le_bytes().to_vec()),
        ("bool", 7, vec![1]),
        ("string", 8, string_value("text")),
        ("array", 9, array),
        ("u64", 10, 7u64.to_le_bytes().to_vec()),
        ("i64", 11, (-7i64).to_le_bytes().to_vec()),
        ("f64", 12, 0.25f64.to_le_bytes().to_vec()),
    ];
    let bytes = file(
        &metadata,
        &[("v", 0, &[2], &floats), ("m", 8, &[1, 32], &q8)],
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.gguf");
    std::fs::write(&path, &bytes).unwrap();
    let (header, tensors) = read_all(&path).unwrap();
    assert_eq!(header.version, 3);
    let m = &header.metadata;
    assert_eq!(m["i8"], Value::I8(-1));
    assert_eq!(m["i64"], Value::I64(-7));
    assert_eq!(m["f64"], Value::F64(0.25));
    assert_eq!(m["bool"], Value::Bool(true));
    assert_eq!(m["string"], Value::String("text".into()));
    assert_eq!(m["array"], Value::Array { element: 8, len: 2 });
    assert_eq!(m.len(), 13);
    assert_eq!(tensors[0].0, "v");
    assert_eq!(
        tensors[0].1,
        RawTensor {
            dtype: GgmlType::F32,
            dims: vec![2],
            data: floats
        }
    );
    assert_eq!(tensors[1].1.dtype, GgmlType::Q8_0);
    assert_eq!(tensors[1].1.dims, vec![1, 32]);
    assert_eq!(tensors[1].1.data, q8);
}

#[test]
fn malformed_headers_are_refused_with_the_reason() {
    let floats = [0u8; 8];
    let good = file(&[("k", 8, string_value("v"))], &[("v", 0, &[2], &floats)]);
    assert!(parse(&good).is_ok());
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"GGML\x03\0\0\0".to_vec(), "not \"GGUF\""),
        (
            {
                let mut b = good.clone();
                b[4] = 9;
                b
            },
            "unsupported GGUF version 9",
        ),
        (good[..6].to_vec(), "the version needs 4 bytes"),
        (good[..40].to_vec(), "the file has 40 bytes"),
        (
            {
                let mut b = good.clone();
                b[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
                b
            },
            "tensors and 1 metadata entries, at least",
        ),
        (file(&[("k", 13, vec![0])], &[]), "unknown value type 13"),
        (file(&[("k", 7, vec![2])], &[]), "bool of value 2"),
        (
            file(&[("k", 8, vec![0xff; 8])], &[]),
            "metadata k (18446744073709551615 bytes) needs",
        ),
        (
            file(&[("k", 0, vec![1]), ("k", 0, vec![2])], &[]),
            "metadata k appears twice",
        ),
        (
            file(
                &[("general.alignment", 4, 3u32.to_le_bytes().to_vec())],
                &[],
            ),
            "general.alignment is 3",
        ),
        (
            file(&[], &[("t", 1, &[2], &[0; 4])]),
            "ggml type F16 (1) is not supported",
        ),
        (
            file(&[], &[("t", 12, &[256], &[0; 144])]),
            "ggml type Q4_K (12) is not supported",
        ),
        (
            file(&[], &[("t", 99, &[2], &[0; 8])]),
            "unknown ggml type 99",
        ),
        (
            file(&[], &[("t", 8, &[16], &[0; 34])]),
            "not whole blocks of 32",
        ),
        (
            file(&[], &[("t", 0, &[1, 1, 1, 1, 1], &[0; 4])]),
            "5 dimensions",
        ),
        (
            file(&[], &[("t", 0, &[1 << 40, 1 << 40], &[0; 4])]),
            "too many values",
        ),
        (
            file(&[], &[("t", 0, &[64], &[0; 8])]),
            "lies beyond the end of the file",
        ),
        (
            file(&[], &[("t", 0, &[2], &[0; 8]), ("t", 0, &[2], &[0; 8])]),
            "tensor t appears twice",
        ),
    ];
    for (bytes, want) in cases {
        let err = parse(&bytes).unwrap_err();
        assert!(err.contains(want), "{want:?}: {err}");
    }
    // arrays of arrays of ... are bounded
    let mut nested = Vec::new();
    for _ in 0..100 {
        nested.extend(9u32.to_le_bytes());
        nested.extend(1u64.to_le_bytes());
    }
    nested.extend(0u32.to_le_bytes());
    nested.extend(0u64.to_le_bytes());
    let err = parse(&file(&[("k", 9, nested)], &[])).unwrap_err();
    assert!(err.contains("more than 16 deep"), "{err}");
    // a huge array of one-byte values in a small file
    let mut huge = 0u32.to_le_bytes().to_vec();
    huge.extend((1u64 << 40).to_le_bytes());
    let err = parse(&file(&[("k", 9, huge)], &[])).unwrap_err();
    assert!(err.contains("1099511627776 elements"), "{err}");
    // tensors that overlap to declare more data than the file holds
    let overlapping = {
        let mut b = file(&[], &[("a", 0, &[8], &[0; 32]), ("b", 0, &[8], &[0; 32])]);
        let at = b
            .windows(8)
            .rposition(|w| w == 32u64.to_le_bytes())
            .unwrap();
        b[at..at + 8].copy_from_slice(&0u64.to_le_bytes());
        b.truncate(b.len() - 32);
        b
    };
    let err = parse(&overlapping).unwrap_err();
    assert!(err.contains("the tensors declare 64 bytes"), "{err}");
}

/// Our reader and candle's read the shipped model to the same metadata and tensors.
#[cfg(feature = "train")]
#[test]
fn the_bundled_model_reads_as_candle_reads_it() {
    use candle_core::quantized::gguf_file;

    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("model/generative.q4.gguf");
    let (header, tensors) = read_all(&path).unwrap();
    let mut reader = std::io::BufReader::new(std::fs::File::open(&path).unwrap());
    let content = gguf_file::Content::read(&mut reader).unwrap();
    assert_eq!(header.metadata.len(), content.metadata.len());
    for (key, value) in &content.metadata {
        match value {
            gguf_file::Value::String(s) => {
                assert_eq!(header.metadata[key], Value::String(s.clone()))
            }
            gguf_file::Value::U32(v) => assert_eq!(header.metadata[key], Value::U32(*v)),
            other => panic!("{key}: {other:?}"),
        }
    }
    assert_eq!(tensors.len(), content.tensor_infos.len());
    let mut types = std::collections::HashSet::new();
    for (name, ours) in &tensors {
        let theirs = content
            .tensor(&mut reader, name, &candle_core::Device::Cpu)
            .unwrap();
        assert_eq!(format!("{:?}", ours.dtype), format!("{:?}", theirs.dtype()));
        assert_eq!(ours.dtype.id(), {
            let id = match theirs.dtype() {
                candle_core::quantized::GgmlDType::F32 => 0,
                candle_core::quantized::GgmlDType::Q4_0 => 2,
                candle_core::quantized::GgmlDType::Q8_0 => 8,
                other => panic!("{other:?}"),
            };
            id
        });
        assert_eq!(ours.dims, theirs.shape().dims(), "{name}");
        assert_eq!(ours.data, theirs.data().unwrap().as_ref(), "{name}");
        types.insert(ours.dtype);
    }
    assert_eq!(types.len(), 3, "{types:?}");
}
