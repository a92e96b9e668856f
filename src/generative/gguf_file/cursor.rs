//! Bounded reads of a GGUF file: every length checked against the bytes that remain before
//! anything is allocated, and metadata values parsed with their nesting bounded.

use std::io::Read;

use super::{Value, MAX_DEPTH};

/// A reader that knows its position and the file's length, so that no read is attempted, and
/// nothing allocated, beyond the bytes that remain.
pub(super) struct Cursor<R> {
    pub(super) inner: R,
    pub(super) pos: u64,
    pub(super) len: u64,
    /// Lengths and counts are `u32` in version 1, `u64` after.
    pub(super) wide: bool,
}

impl<R: Read> Cursor<R> {
    pub(super) fn remaining(&self) -> u64 {
        self.len.saturating_sub(self.pos)
    }

    /// Fails unless `n` bytes remain for `what`.
    pub(super) fn need(&self, n: u64, what: &dyn Fn() -> String) -> Result<(), String> {
        if n > self.remaining() {
            return Err(format!(
                "{} needs {n} bytes at offset {}, the file has {} bytes",
                what(),
                self.pos,
                self.len
            ));
        }
        Ok(())
    }

    pub(super) fn array<const N: usize>(
        &mut self,
        what: &dyn Fn() -> String,
    ) -> Result<[u8; N], String> {
        self.need(N as u64, what)?;
        let mut b = [0u8; N];
        self.inner
            .read_exact(&mut b)
            .map_err(|e| format!("cannot read {}: {e}", what()))?;
        self.pos += N as u64;
        Ok(b)
    }

    pub(super) fn bytes(&mut self, n: u64, what: &dyn Fn() -> String) -> Result<Vec<u8>, String> {
        self.need(n, what)?;
        let mut b = vec![0u8; n as usize];
        self.inner
            .read_exact(&mut b)
            .map_err(|e| format!("cannot read {}: {e}", what()))?;
        self.pos += n;
        Ok(b)
    }

    pub(super) fn skip(&mut self, n: u64, what: &dyn Fn() -> String) -> Result<(), String> {
        self.need(n, what)?;
        let copied = std::io::copy(&mut (&mut self.inner).take(n), &mut std::io::sink())
            .map_err(|e| format!("cannot read {}: {e}", what()))?;
        if copied != n {
            return Err(format!("cannot read {}: the file ends early", what()));
        }
        self.pos += n;
        Ok(())
    }

    pub(super) fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32, String> {
        self.array(what).map(u32::from_le_bytes)
    }

    pub(super) fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64, String> {
        self.array(what).map(u64::from_le_bytes)
    }

    /// A length or count: `u64`, or `u32` in version 1.
    pub(super) fn length(&mut self, what: &dyn Fn() -> String) -> Result<u64, String> {
        if self.wide {
            self.u64(what)
        } else {
            self.u32(what).map(u64::from)
        }
    }

    /// Bytes of a length or count field.
    pub(super) fn length_size(&self) -> u64 {
        if self.wide {
            8
        } else {
            4
        }
    }

    pub(super) fn string(&mut self, what: &dyn Fn() -> String) -> Result<String, String> {
        let len = self.length(&|| format!("the length of {}", what()))?;
        let bytes = self.bytes(len, &|| format!("{} ({len} bytes)", what()))?;
        String::from_utf8(bytes).map_err(|_| format!("{} is not UTF-8", what()))
    }

    /// Fewest bytes a value of GGUF type `ty` takes.
    pub(super) fn min_size(&self, ty: u32) -> u64 {
        match ty {
            0 | 1 | 7 => 1,
            2 | 3 => 2,
            4..=6 => 4,
            10..=12 => 8,
            8 => self.length_size(),
            _ => 4 + self.length_size(),
        }
    }

    /// A metadata value of GGUF type `ty`; `depth` arrays deep.
    pub(super) fn value(
        &mut self,
        ty: u32,
        depth: usize,
        what: &dyn Fn() -> String,
    ) -> Result<Value, String> {
        Ok(match ty {
            0 => Value::U8(self.array::<1>(what)?[0]),
            1 => Value::I8(i8::from_le_bytes(self.array(what)?)),
            2 => Value::U16(u16::from_le_bytes(self.array(what)?)),
            3 => Value::I16(i16::from_le_bytes(self.array(what)?)),
            4 => Value::U32(self.u32(what)?),
            5 => Value::I32(i32::from_le_bytes(self.array(what)?)),
            6 => Value::F32(f32::from_le_bytes(self.array(what)?)),
            7 => match self.array::<1>(what)?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => return Err(format!("{} is a bool of value {b}", what())),
            },
            8 => Value::String(self.string(what)?),
            9 => {
                if depth >= MAX_DEPTH {
                    return Err(format!(
                        "{} nests arrays more than {MAX_DEPTH} deep",
                        what()
                    ));
                }
                let element = self.u32(&|| format!("the element type of {}", what()))?;
                let len = self.length(&|| format!("the length of {}", what()))?;
                check_value_type(element, what)?;
                let min = len.saturating_mul(self.min_size(element));
                self.need(min, &|| format!("{} ({len} elements)", what()))?;
                match element {
                    // fixed-size elements are skipped at once
                    0..=7 | 10..=12 => self.skip(min, what)?,
                    _ => {
                        for i in 0..len {
                            self.value(element, depth + 1, &|| {
                                format!("element {i} of {}", what())
                            })?;
                        }
                    }
                }
                Value::Array { element, len }
            }
            10 => Value::U64(self.u64(what)?),
            11 => Value::I64(i64::from_le_bytes(self.array(what)?)),
            12 => Value::F64(f64::from_le_bytes(self.array(what)?)),
            _ => return Err(format!("{} has unknown value type {ty}", what())),
        })
    }
}

/// Fails unless `ty` is a GGUF value type (0 to 12).
pub(super) fn check_value_type(ty: u32, what: &dyn Fn() -> String) -> Result<(), String> {
    if ty > 12 {
        return Err(format!("{} has unknown value type {ty}", what()));
    }
    Ok(())
}
