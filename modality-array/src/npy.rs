//! Reading and writing NumPy `.npy` files (npyz): numeric arrays of any shape, C or Fortran order,
//! either byte order, with every problem named before anything is decoded where the header can
//! tell.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;

use asmr_core::{Error, Result};
use npyz::{DType, NpyFile, NpyHeader, Order, TypeChar, TypeStr, WriterBuilder};

/// A numeric element type `.npy` files store and asmr reads and writes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    F32,
    F64,
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
}

impl Kind {
    /// The kind of a dtype, or the reason it cannot be fitted.
    pub fn of(t: &TypeStr) -> std::result::Result<Kind, String> {
        let size = t.size_field();
        let kind = match (t.type_char(), size) {
            (TypeChar::Float, 4) => Kind::F32,
            (TypeChar::Float, 8) => Kind::F64,
            (TypeChar::Int, 1) => Kind::I8,
            (TypeChar::Int, 2) => Kind::I16,
            (TypeChar::Int, 4) => Kind::I32,
            (TypeChar::Int, 8) => Kind::I64,
            (TypeChar::Uint, 1) => Kind::U8,
            (TypeChar::Uint, 2) => Kind::U16,
            (TypeChar::Uint, 4) => Kind::U32,
            (TypeChar::Uint, 8) => Kind::U64,
            (TypeChar::Float, _) => {
                return Err(format!(
                    "dtype {t}: {}-bit floats are not supported (float32 and float64 are)",
                    size * 8
                ))
            }
            (TypeChar::Complex, _) => {
                return Err(format!(
                    "dtype {t}: complex values are not supported; fit the real and imaginary \
                     parts as two channels (np.stack([a.real, a.imag], -1), --channel-axis -1)"
                ))
            }
            (TypeChar::Object, _) => {
                return Err("an object array (pickled Python objects) is not numeric data".into())
            }
            (TypeChar::Bool, _) => {
                return Err(format!(
                    "dtype {t}: booleans are not supported (store them as uint8)"
                ))
            }
            _ => return Err(format!("dtype {t} is not numeric")),
        };
        Ok(kind)
    }

    /// Whether stored values are whole numbers (written back rounded and clamped).
    pub fn integer(self) -> bool {
        !matches!(self, Kind::F32 | Kind::F64)
    }

    /// The smallest and largest value the type holds.
    pub fn bounds(self) -> (f64, f64) {
        match self {
            Kind::F32 => (f32::MIN as f64, f32::MAX as f64),
            Kind::F64 => (f64::MIN, f64::MAX),
            Kind::I8 => (i8::MIN as f64, i8::MAX as f64),
            Kind::I16 => (i16::MIN as f64, i16::MAX as f64),
            Kind::I32 => (i32::MIN as f64, i32::MAX as f64),
            Kind::I64 => (i64::MIN as f64, i64::MAX as f64),
            Kind::U8 => (0.0, u8::MAX as f64),
            Kind::U16 => (0.0, u16::MAX as f64),
            Kind::U32 => (0.0, u32::MAX as f64),
            Kind::U64 => (0.0, u64::MAX as f64),
        }
    }

    /// A value as the type stores it: rounded and clamped for integers, rounded to f32 for F32.
    pub fn stored(self, v: f64) -> f64 {
        match self {
            Kind::F64 => v,
            Kind::F32 => v as f32 as f64,
            _ => {
                let (lo, hi) = self.bounds();
                v.round().clamp(lo, hi)
            }
        }
    }
}

/// A whole array: its header facts and its values as f64, in C (row-major) order.
#[derive(Debug, Clone)]
pub struct Array {
    pub shape: Vec<usize>,
    /// The dtype string as stored (`<f4`, `>i2`...), written back unchanged.
    pub dtype: String,
    pub kind: Kind,
    pub values: Vec<f64>,
}

/// The header of an `.npy` file and what it declares, checked: shape, dtype, element count.
pub struct Header {
    pub shape: Vec<usize>,
    pub dtype: TypeStr,
    pub kind: Kind,
    pub order: Order,
    pub count: usize,
}

/// Read and check the header; `file_len` is the file's size, to catch a truncated data part.
/// The header length an `.npy` file declares (after the magic and version: 2 bytes in version 1,
/// 4 in versions 2 and 3) fits in the file, checked before anything allocates that length.
fn declared_header_fits<R: Read + Seek>(path: &Path, reader: &mut R, file_len: u64) -> Result<()> {
    let mut start = [0u8; 12];
    let got = reader.read(&mut start).map_err(|e| Error::io(path, e))?;
    reader
        .seek(SeekFrom::Start(0))
        .map_err(|e| Error::io(path, e))?;
    if got < 10 || &start[..6] != b"\x93NUMPY" {
        return Ok(()); // the parser names what is wrong
    }
    let (prefix, declared) = match start[6] {
        1 => (10u64, u64::from(u16::from_le_bytes([start[8], start[9]]))),
        _ if got >= 12 => (
            12u64,
            u64::from(u32::from_le_bytes([
                start[8], start[9], start[10], start[11],
            ])),
        ),
        _ => return Ok(()),
    };
    if prefix + declared > file_len {
        return Err(Error::input(
            path,
            format!(
                "truncated or not a NumPy .npy file: its header declares {declared} bytes, the \
                 file holds {file_len}"
            ),
        ));
    }
    Ok(())
}

fn header<R: Read + Seek>(
    path: &Path,
    reader: &mut R,
    file_len: u64,
) -> Result<(NpyHeader, Header)> {
    let bad = |m: String| Error::input(path, m);
    declared_header_fits(path, reader, file_len)?;
    let h = NpyHeader::from_reader(&mut *reader)
        .map_err(|e| bad(format!("not a NumPy .npy file ({e})")))?;
    let data_start = reader.stream_position().map_err(|e| Error::io(path, e))?;
    let dtype = match h.dtype() {
        DType::Plain(t) => t,
        DType::Record(_) | DType::Array(..) => {
            return Err(bad(
                "a structured (record) array is not a numeric array".into()
            ))
        }
    };
    let kind = Kind::of(&dtype).map_err(bad)?;
    let shape: Vec<usize> = h.shape().iter().map(|&n| n as usize).collect();
    if shape.is_empty() {
        return Err(bad("a 0-d array (a single value) is not a signal".into()));
    }
    if let Some(a) = shape.iter().position(|&n| n == 0) {
        return Err(bad(format!("axis {a} of shape {shape:?} is empty")));
    }
    let count = shape
        .iter()
        .try_fold(1usize, |acc, &n| acc.checked_mul(n))
        .ok_or_else(|| {
            bad(format!(
                "shape {shape:?} holds more values than can be counted"
            ))
        })?;
    let item = dtype.num_bytes().unwrap_or(8) as u64;
    let need = (count as u64).saturating_mul(item);
    let held = file_len.saturating_sub(data_start);
    if held < need {
        return Err(bad(format!(
            "truncated: its header declares {shape:?} {dtype} ({need} bytes of data), the file \
             holds {held}"
        )));
    }
    let order = h.order();
    Ok((
        h.clone(),
        Header {
            shape,
            dtype,
            kind,
            order,
            count,
        },
    ))
}

/// Read a whole array; values in C order whatever the file's order. `check` sees the header first
/// and may refuse the array before its data is decoded (a memory limit).
pub fn read(path: &Path, check: impl FnOnce(&Header) -> Result<()>) -> Result<Array> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut r = BufReader::new(file);
    let (raw, h) = header(path, &mut r, len)?;
    check(&h)?;
    let npy = NpyFile::with_header(raw, r);
    let io = |e: std::io::Error| Error::input(path, format!("cannot read the data ({e})"));
    let values: Vec<f64> = match h.kind {
        Kind::F32 => widen(npy.into_vec::<f32>().map_err(io)?),
        Kind::F64 => npy.into_vec::<f64>().map_err(io)?,
        Kind::I8 => widen(npy.into_vec::<i8>().map_err(io)?),
        Kind::I16 => widen(npy.into_vec::<i16>().map_err(io)?),
        Kind::I32 => widen(npy.into_vec::<i32>().map_err(io)?),
        Kind::I64 => npy
            .into_vec::<i64>()
            .map_err(io)?
            .into_iter()
            .map(|v| v as f64)
            .collect(),
        Kind::U8 => widen(npy.into_vec::<u8>().map_err(io)?),
        Kind::U16 => widen(npy.into_vec::<u16>().map_err(io)?),
        Kind::U32 => widen(npy.into_vec::<u32>().map_err(io)?),
        Kind::U64 => npy
            .into_vec::<u64>()
            .map_err(io)?
            .into_iter()
            .map(|v| v as f64)
            .collect(),
    };
    if values.len() != h.count {
        return Err(Error::input(
            path,
            format!(
                "holds {} values, its header declares {}",
                values.len(),
                h.count
            ),
        ));
    }
    let values = match h.order {
        Order::C => values,
        Order::Fortran => fortran_to_c(&values, &h.shape),
    };
    Ok(Array {
        shape: h.shape,
        dtype: h.dtype.to_string(),
        kind: h.kind,
        values,
    })
}

fn widen<T: Into<f64>>(v: Vec<T>) -> Vec<f64> {
    v.into_iter().map(Into::into).collect()
}

/// Values stored first-axis-fastest, reordered last-axis-fastest.
pub fn fortran_to_c(values: &[f64], shape: &[usize]) -> Vec<f64> {
    let n = values.len();
    let d = shape.len();
    let mut out = vec![0.0; n];
    let mut idx = vec![0usize; d];
    for v in out.iter_mut() {
        // `idx` walks C order; its Fortran offset is the sum of idx[a] * prod(shape[..a]).
        let mut off = 0;
        let mut stride = 1;
        for a in 0..d {
            off += idx[a] * stride;
            stride *= shape[a];
        }
        *v = values[off];
        for a in (0..d).rev() {
            idx[a] += 1;
            if idx[a] < shape[a] {
                break;
            }
            idx[a] = 0;
        }
    }
    out
}

/// Write `values` (C order, already as the dtype stores them) as an `.npy` of `shape` and `dtype`.
pub fn write<W: Write>(w: W, shape: &[usize], dtype: &str, values: &[f64]) -> Result<()> {
    let t: TypeStr = dtype
        .parse()
        .map_err(|e| Error::Invalid(format!("dtype {dtype}: {e}")))?;
    let kind = Kind::of(&t).map_err(Error::Invalid)?;
    let shape: Vec<u64> = shape.iter().map(|&n| n as u64).collect();
    let io = |e: std::io::Error| Error::Invalid(format!("writing the .npy data: {e}"));
    macro_rules! emit {
        ($t:ty) => {{
            let mut out = npyz::WriteOptions::<$t>::new()
                .dtype(DType::Plain(t.clone()))
                .shape(&shape)
                .writer(w)
                .begin_nd()
                .map_err(io)?;
            for &v in values {
                out.push(&(v as $t)).map_err(io)?;
            }
            out.finish().map_err(io)
        }};
    }
    match kind {
        Kind::F32 => emit!(f32),
        Kind::F64 => emit!(f64),
        Kind::I8 => emit!(i8),
        Kind::I16 => emit!(i16),
        Kind::I32 => emit!(i32),
        Kind::I64 => emit!(i64),
        Kind::U8 => emit!(u8),
        Kind::U16 => emit!(u16),
        Kind::U32 => emit!(u32),
        Kind::U64 => emit!(u64),
    }
}
