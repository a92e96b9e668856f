//! The three decoders and their sessions as Python classes. Each wraps the crate's decoder; the
//! GIL is released while it decodes, so threads calling one decoder run in parallel.

use std::path::PathBuf;
use std::sync::Mutex;

use lightweight_decoder as ld;
use lightweight_decoder::generative::DecodeOptions;
use lightweight_decoder::verify::Proposer;
use lightweight_decoder::{Decoder, DecoderBuilder, DecoderConfig};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

use crate::arrays::{matrix, vector};
use crate::errors::IntoPyResult;
use crate::results::{decoded_list, to_python, Decoded};

/// A crate decoder, alone or verified by the encoder (the constructors' `verify=True`).
pub enum Verifiable<D: Proposer> {
    /// The decoder's own answers.
    Plain(D),
    /// Every answer re-embedded beside its alternatives (and refined with `refine=True`).
    Verified(ld::VerifiedDecoder<D>),
}

impl<D: Proposer> Verifiable<D> {
    /// The decoder that answers.
    fn decoder(&self) -> &dyn Decoder {
        match self {
            Verifiable::Plain(d) => d,
            Verifiable::Verified(v) => v,
        }
    }

    /// The crate decoder itself (verified or not), for its statistics and health.
    fn unverified(&self) -> &D {
        match self {
            Verifiable::Plain(d) => d,
            Verifiable::Verified(v) => v.inner(),
        }
    }
}

/// The constructors' verification arguments: `verify`, `refine` and `encoder`.
pub struct Verification<'a, 'py> {
    verify: bool,
    refine: bool,
    encoder: Option<&'a Bound<'py, crate::encoder::MpnetEncoder>>,
}

impl Verification<'_, '_> {
    /// Checks the combination before anything loads.
    fn check(&self) -> PyResult<()> {
        if self.refine && !self.verify {
            return Err(PyValueError::new_err(
                "refine=True needs verify=True (refinement improves the verified choice)",
            ));
        }
        if self.encoder.is_some() && !self.verify {
            return Err(PyValueError::new_err(
                "encoder= is the verifier's encoder: pass it with verify=True",
            ));
        }
        Ok(())
    }

    /// `decoder`, verified as asked with the config's `verify` settings (as `lwdec --verify
    /// [--refine]` with that config).
    fn apply<D: Proposer + Send>(
        &self,
        py: Python<'_>,
        builder: &DecoderBuilder,
        decoder: D,
    ) -> PyResult<Verifiable<D>> {
        if !self.verify {
            return Ok(Verifiable::Plain(decoder));
        }
        let encoder: std::sync::Arc<dyn ld::Encoder> =
            crate::encoder::encoder_or_default(py, self.encoder)?;
        let settings = builder.decoder_config().verify_settings(self.refine);
        let verified = py
            .detach(|| builder.verify(decoder, encoder, settings))
            .py()?;
        Ok(Verifiable::Verified(verified))
    }
}

/// The context one stream of related embeddings carries from decode to decode.
///
/// Make one with ``decoder.new_session()`` and pass it to ``decoder.decode(v, session=s)``;
/// each decode reads the context and records itself in it.
#[pyclass(frozen, module = "lightweight_decoder")]
pub struct Session {
    inner: Mutex<ld::Session>,
}

#[pymethods]
impl Session {
    /// Decodes remembered (at most the decoder's context window).
    fn __len__(&self) -> usize {
        self.inner.lock().map_or(0, |s| s.entries().len())
    }

    fn __repr__(&self) -> String {
        format!("Session(remembered={})", self.__len__())
    }
}

/// The bundled data folder of the package (`lightweight_decoder/data`).
fn bundled_data(py: Python<'_>) -> PyResult<PathBuf> {
    py.import("lightweight_decoder")?
        .getattr("BUNDLED_DATA")?
        .extract()
}

/// `bank_dir`, else `$LWDEC_BANK_DIR`, else the bundled bank.
fn bank_dir(py: Python<'_>, bank_dir: Option<PathBuf>) -> PyResult<PathBuf> {
    if let Some(dir) = bank_dir {
        return Ok(dir);
    }
    match std::env::var_os(ld::phrase_bank::BANK_DIR_ENV) {
        Some(dir) => Ok(dir.into()),
        None => Ok(bundled_data(py)?.join("phrase_bank")),
    }
}

/// `model_path`, else `$LWDEC_MODEL`, else the bundled model.
fn model_path(py: Python<'_>, model_path: Option<PathBuf>) -> PyResult<PathBuf> {
    if let Some(path) = model_path {
        return Ok(path);
    }
    match std::env::var_os(ld::generative::MODEL_PATH_ENV) {
        Some(path) => Ok(path.into()),
        None => Ok(bundled_data(py)?.join("generative.q4.gguf")),
    }
}

/// Session boundaries as row indices: a negative or huge value (or a non-integer) is a
/// `ValueError` naming its position, not an `OverflowError`.
fn row_indices(values: &[Bound<'_, PyAny>]) -> PyResult<Vec<usize>> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.extract::<usize>().map_err(|_| {
                let shown = v.repr().map_or_else(|_| "?".into(), |r| r.to_string());
                PyValueError::new_err(format!(
                    "invalid session boundaries: boundaries[{i}] is {shown}, not a row index \
                     (an integer from 0 to the number of rows)"
                ))
            })
        })
        .collect()
}

/// A config value (a dict's content) as JSON, checked as it is converted: a non-finite number
/// or a value JSON cannot hold is a `ValueError` naming its key (`key` is the path so far).
fn config_json(value: &Bound<'_, PyAny>, key: &str) -> PyResult<serde_json::Value> {
    use serde_json::Value;
    let at = |what: String| PyValueError::new_err(format!("config key `{key}`: {what}"));
    if value.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(b) = value.cast::<pyo3::types::PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if value.cast::<pyo3::types::PyInt>().is_ok() {
        if let Ok(v) = value.extract::<i64>() {
            return Ok(Value::from(v));
        }
        if let Ok(v) = value.extract::<u64>() {
            return Ok(Value::from(v));
        }
        return Err(at(format!("{} is out of range", value.repr()?)));
    }
    if value.cast::<pyo3::types::PyFloat>().is_ok() {
        let v: f64 = value.extract()?;
        return serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| at(format!("{v} is not a finite number")));
    }
    if value.cast::<PyString>().is_ok() {
        return Ok(Value::String(value.extract()?));
    }
    if let Ok(d) = value.cast::<PyDict>() {
        let mut map = serde_json::Map::new();
        for (k, v) in d.iter() {
            let name: String = k.extract().map_err(|_| {
                at(format!(
                    "the key {} is not a string",
                    k.repr().map_or_else(|_| "?".into(), |r| r.to_string())
                ))
            })?;
            let path = if key.is_empty() {
                name.clone()
            } else {
                format!("{key}.{name}")
            };
            map.insert(name, config_json(&v, &path)?);
        }
        return Ok(Value::Object(map));
    }
    if value.cast::<pyo3::types::PyList>().is_ok() || value.cast::<pyo3::types::PyTuple>().is_ok() {
        let items: Vec<Bound<'_, PyAny>> = value.extract()?;
        return items
            .iter()
            .enumerate()
            .map(|(i, v)| config_json(v, &format!("{key}[{i}]")))
            .collect::<PyResult<Vec<_>>>()
            .map(Value::Array);
    }
    // NumPy scalars and other numbers
    if let Ok(v) = value.extract::<f64>() {
        return serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| at(format!("{v} is not a finite number")));
    }
    Err(at(format!(
        "a value of type {} is not a setting",
        value.get_type().name()?
    )))
}

/// The settings from `config`: None (the defaults), a dict (the keys of `DecoderConfig`'s
/// JSON), or the path of a JSON file.
fn decoder_config(config: Option<&Bound<'_, PyAny>>) -> PyResult<DecoderConfig> {
    let Some(config) = config.filter(|c| !c.is_none()) else {
        return Ok(DecoderConfig::default());
    };
    if config.cast::<PyDict>().is_ok() {
        let json = config_json(config, "")?.to_string();
        return DecoderConfig::from_json(&json).py();
    }
    if config.cast::<PyString>().is_ok() || config.hasattr("__fspath__")? {
        let path: PathBuf = config.extract()?;
        return ld::load_config(&path).py();
    }
    Err(PyTypeError::new_err(
        "config must be None, a dict or the path of a JSON file",
    ))
}

/// The generator's decoding options, as `lwdec`'s `--beam`, `--mbr` and `--mbr-temperature`.
fn decode_options(beam: usize, mbr: usize, mbr_temperature: f32) -> PyResult<DecodeOptions> {
    DecodeOptions::with_search(beam, mbr, mbr_temperature)
        .map_err(|e| PyValueError::new_err(e.to_string()))
}

/// `$LWDEC_LANGUAGE_MODEL`, else the bundled model of English (refinement's).
fn language_model_path(py: Python<'_>) -> PyResult<PathBuf> {
    match std::env::var_os(ld::language_model::LANGUAGE_MODEL_ENV) {
        Some(path) => Ok(path.into()),
        None => Ok(bundled_data(py)?.join("english.lm")),
    }
}

/// What every decoder's constructor is given, besides verification.
pub struct Arguments<'a, 'py> {
    bank_dir: Option<PathBuf>,
    model_path: Option<PathBuf>,
    config: Option<&'a Bound<'py, PyAny>>,
    options: DecodeOptions,
    guide: bool,
}

impl<'a, 'py> Arguments<'a, 'py> {
    /// The arguments as given (None: the bundled bank and model, the default settings).
    fn new(
        bank_dir: Option<PathBuf>,
        model_path: Option<PathBuf>,
        config: Option<&'a Bound<'py, PyAny>>,
        options: DecodeOptions,
        guide: bool,
    ) -> Self {
        Arguments {
            bank_dir,
            model_path,
            config,
            options,
            guide,
        }
    }
}

/// The decoder `build` makes from the constructor's arguments (the GIL released while it
/// loads), verified as asked.
fn open<D: Proposer + Send>(
    py: Python<'_>,
    args: Arguments<'_, '_>,
    verification: Verification<'_, '_>,
    build: impl FnOnce(&DecoderBuilder) -> ld::Result<D> + Send,
) -> PyResult<Verifiable<D>> {
    verification.check()?;
    let builder = builder(
        py,
        args.bank_dir,
        args.model_path,
        args.config,
        args.guide,
        args.options,
    )?;
    let decoder = py.detach(|| build(&builder)).py()?;
    verification.apply(py, &builder, decoder)
}

/// A builder from the constructors' arguments.
fn builder(
    py: Python<'_>,
    bank: Option<PathBuf>,
    model: Option<PathBuf>,
    config: Option<&Bound<'_, PyAny>>,
    guide: bool,
    options: DecodeOptions,
) -> PyResult<DecoderBuilder> {
    let mut config = decoder_config(config)?;
    if !guide {
        config = config.without_guide();
    }
    config.validate().py()?;
    Ok(DecoderBuilder::new()
        .bank_dir(Some(bank_dir(py, bank)?))
        .model_path(Some(model_path(py, model)?))
        .language_model_path(Some(language_model_path(py)?))
        .config(config)
        .decode_options(options))
}

/// Decodes one embedding (optionally in a session) with the GIL released.
fn decode_one(
    decoder: &dyn Decoder,
    embedding: &Bound<'_, PyAny>,
    session: Option<&Bound<'_, Session>>,
    scale: Option<&Bound<'_, PyAny>>,
) -> PyResult<Decoded> {
    let py = embedding.py();
    let rows = vector(embedding, scale, decoder.dim())?;
    let view = rows.view();
    let row = view.row(0);
    let values = row.to_vec();
    let session = session.map(|s| s.get());
    let decoded = py.detach(|| match session {
        Some(s) => {
            let mut guard = s
                .inner
                .lock()
                .map_err(|_| ld::Error::Internal("a session's lock is poisoned".into()))?;
            decoder.decode_in_session(&values, &mut guard)
        }
        None => decoder.decode(&values),
    });
    Ok(Decoded::from(decoded.py()?))
}

/// Decodes a batch (sessions from `boundaries`, else one per row) with the GIL released.
fn decode_batch<'py>(
    decoder: &dyn Decoder,
    embeddings: &Bound<'py, PyAny>,
    boundaries: Option<Vec<Bound<'py, PyAny>>>,
    scale: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyList>> {
    let py = embeddings.py();
    let boundaries = boundaries.map(|b| row_indices(&b)).transpose()?;
    let rows = matrix(embeddings, scale, Some(decoder.dim()))?;
    let view = rows.view();
    let decoded = py.detach(|| match &boundaries {
        Some(b) => decoder.batch_decode_with_sessions(view, b),
        None => decoder.batch_decode(view),
    });
    decoded_list(py, decoded.py()?)
}

/// The methods every decoder class has, over its `inner` crate decoder.
macro_rules! decoder_methods {
    ($class:ident, $name:literal, { $($extra:tt)* }) => {
        #[pymethods]
        impl $class {
            $($extra)*

            /// Dimension of the embeddings this decoder accepts (768 for the bundled data).
            #[getter]
            fn dim(&self) -> usize {
                self.inner.decoder().dim()
            }

            /// A fresh session for a stream of related embeddings.
            fn new_session(&self) -> Session {
                Session {
                    inner: Mutex::new(self.inner.decoder().new_session()),
                }
            }

            /// Decodes one embedding: a 1-D array of ``dim`` values (float32, float64, or
            /// int8 with ``scale`` a number). With ``session`` it decodes in that context and
            /// records itself in it.
            #[pyo3(signature = (embedding, session=None, scale=None))]
            fn decode(
                &self,
                embedding: &Bound<'_, PyAny>,
                session: Option<&Bound<'_, Session>>,
                scale: Option<&Bound<'_, PyAny>>,
            ) -> PyResult<Decoded> {
                decode_one(self.inner.decoder(), embedding, session, scale)
            }

            /// Decodes the rows of a 2-D array (rows x ``dim``: float32 in any layout,
            /// float64, or int8 with ``scale`` one float32 per row), each in its own session,
            /// in parallel. Returns a list of ``Decoded`` in row order.
            #[pyo3(signature = (embeddings, scale=None))]
            fn batch_decode<'py>(
                &self,
                embeddings: &Bound<'py, PyAny>,
                scale: Option<&Bound<'py, PyAny>>,
            ) -> PyResult<Bound<'py, PyList>> {
                decode_batch(self.inner.decoder(), embeddings, None, scale)
            }

            /// Decodes the rows of a 2-D array grouped into sessions: ``boundaries`` are the
            /// first rows of the sessions, strictly increasing (row 0 always starts one).
            /// The result equals decoding each session's rows in order in one session.
            #[pyo3(signature = (embeddings, boundaries, scale=None))]
            fn batch_decode_with_sessions<'py>(
                &self,
                embeddings: &Bound<'py, PyAny>,
                boundaries: Vec<Bound<'py, PyAny>>,
                scale: Option<&Bound<'py, PyAny>>,
            ) -> PyResult<Bound<'py, PyList>> {
                decode_batch(self.inner.decoder(), embeddings, Some(boundaries), scale)
            }

            /// Embeds ``texts`` (a list of str) with ``encoder`` (an ``MpnetEncoder``; None: the
            /// default one, ``MpnetEncoder()``, loaded once), decodes the embeddings (in sessions
            /// starting at ``boundaries`` when given, else each alone) and re-embeds each
            /// output: its cosine with the input's embedding is ``roundtrip_cosine``. The
            /// results equal ``lwdec decode --text``'s lines, in input order.
            #[pyo3(signature = (texts, encoder=None, *, boundaries=None))]
            fn decode_text<'py>(
                &self,
                py: Python<'py>,
                texts: Vec<String>,
                encoder: Option<&Bound<'py, crate::encoder::MpnetEncoder>>,
                boundaries: Option<Vec<Bound<'py, PyAny>>>,
            ) -> PyResult<Bound<'py, PyList>> {
                let boundaries = boundaries.map(|b| row_indices(&b)).transpose()?;
                let decoded =
                    crate::encoder::decode_texts(py, self.inner.decoder(), &texts, encoder, boundaries)?;
                decoded_list(py, decoded)
            }

            /// Seconds the crate's own ``batch_decode`` takes on ``embeddings`` (float32, 2-D),
            /// timed inside Rust with no Python objects made: the yardstick of
            /// ``benchmarks/bench_batch.py``. Not part of the stable API.
            fn _rust_batch_seconds(&self, embeddings: &Bound<'_, PyAny>) -> PyResult<f64> {
                let py = embeddings.py();
                let rows = matrix(embeddings, None, Some(self.inner.decoder().dim()))?;
                let view = rows.view();
                py.detach(|| {
                    let started = std::time::Instant::now();
                    self.inner.decoder().batch_decode(view).map(drop)?;
                    Ok(started.elapsed().as_secs_f64())
                })
                .py()
            }

            fn __repr__(&self) -> String {
                format!("{}(dim={})", $name, self.inner.decoder().dim())
            }
        }
    };
}

/// FAISS search over a bank of phrases with known embeddings: exact on phrases in the bank,
/// sub-millisecond.
///
/// ``PhraseBankDecoder(bank_dir=None, config=None, *, verify=False, refine=False,
/// encoder=None)``: the bank folder (None: the bundled
/// bank, or ``$LWDEC_BANK_DIR``) and the settings (None, a dict with the keys of the crate's
/// ``DecoderConfig`` JSON, or the path of such a JSON file).
///
/// ``verify=True`` re-embeds each answer beside its alternatives with ``encoder`` (None: the
/// default ``MpnetEncoder()``) and returns the closest, its cosine as ``roundtrip_cosine``
/// (``lwdec --verify``); ``refine=True`` then improves it by a word-level search judged by the
/// encoder and the bundled model of English (``--refine``). Both read the config's ``verify``
/// section.
#[pyclass(frozen, module = "lightweight_decoder")]
pub struct PhraseBankDecoder {
    inner: Verifiable<ld::PhraseBankDecoder>,
}

decoder_methods!(PhraseBankDecoder, "PhraseBankDecoder", {
    #[new]
    #[pyo3(signature = (bank_dir=None, config=None, *, verify=false, refine=false, encoder=None))]
    fn py_new(
        py: Python<'_>,
        bank_dir: Option<PathBuf>,
        config: Option<&Bound<'_, PyAny>>,
        verify: bool,
        refine: bool,
        encoder: Option<&Bound<'_, crate::encoder::MpnetEncoder>>,
    ) -> PyResult<Self> {
        let args = Arguments::new(bank_dir, None, config, DecodeOptions::default(), true);
        let inner = open(
            py,
            args,
            Verification {
                verify,
                refine,
                encoder,
            },
            DecoderBuilder::phrase_bank,
        )?;
        Ok(PhraseBankDecoder { inner })
    }

    /// The bundled bank (or ``$LWDEC_BANK_DIR``) with ``config``.
    #[staticmethod]
    #[pyo3(signature = (config=None, *, verify=false, refine=false, encoder=None))]
    fn default(
        py: Python<'_>,
        config: Option<&Bound<'_, PyAny>>,
        verify: bool,
        refine: bool,
        encoder: Option<&Bound<'_, crate::encoder::MpnetEncoder>>,
    ) -> PyResult<Self> {
        Self::py_new(py, None, config, verify, refine, encoder)
    }

    /// Counters: decodes, errors, cache hits, latency percentiles (microseconds), as a dict.
    fn statistics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_python(py, &self.inner.unverified().statistics())
    }

    /// ``{"status": "healthy" | "degraded" | "unhealthy", "reasons": [...]}``.
    fn health<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_python(py, &self.inner.unverified().health())
    }

    /// The bank's manifest (count, dimension, encoder, index kind, checksums) as a dict.
    fn manifest<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_python(py, self.inner.unverified().bank().manifest())
    }
});

/// A byte-level transformer (722,944 parameters, INT4) that writes text byte by byte, guided
/// by the bank's nearest phrases.
///
/// ``GenerativeDecoder(model_path=None, bank_dir=None, config=None, *, beam=1, mbr=0,
/// mbr_temperature=0.6, guide=True, verify=False, refine=False, encoder=None)``: the model
/// file (None: the bundled model, or
/// ``$LWDEC_MODEL``), the guiding bank, the settings, and the search (as ``lwdec``'s
/// ``--beam``, ``--mbr``, ``--no-guide``).
///
/// ``verify=True`` re-embeds each answer beside its alternatives with ``encoder`` (None: the
/// default ``MpnetEncoder()``) and returns the closest, its cosine as ``roundtrip_cosine``
/// (``lwdec --verify``); ``refine=True`` then improves it by a word-level search judged by the
/// encoder and the bundled model of English (``--refine``). Both read the config's ``verify``
/// section.
#[pyclass(frozen, module = "lightweight_decoder")]
pub struct GenerativeDecoder {
    inner: Verifiable<ld::GenerativeDecoder>,
}

decoder_methods!(GenerativeDecoder, "GenerativeDecoder", {
    #[new]
    #[pyo3(signature = (model_path=None, bank_dir=None, config=None, *, beam=1, mbr=0,
                        mbr_temperature=0.6, guide=true, verify=false, refine=false,
                        encoder=None))]
    #[allow(clippy::too_many_arguments)]
    fn py_new(
        py: Python<'_>,
        model_path: Option<PathBuf>,
        bank_dir: Option<PathBuf>,
        config: Option<&Bound<'_, PyAny>>,
        beam: usize,
        mbr: usize,
        mbr_temperature: f32,
        guide: bool,
        verify: bool,
        refine: bool,
        encoder: Option<&Bound<'_, crate::encoder::MpnetEncoder>>,
    ) -> PyResult<Self> {
        let options = decode_options(beam, mbr, mbr_temperature)?;
        let args = Arguments::new(bank_dir, model_path, config, options, guide);
        let inner = open(
            py,
            args,
            Verification {
                verify,
                refine,
                encoder,
            },
            DecoderBuilder::generative,
        )?;
        Ok(GenerativeDecoder { inner })
    }

    /// The bundled model (or ``$LWDEC_MODEL``), guided by the bundled bank.
    #[staticmethod]
    #[pyo3(signature = (config=None, *, beam=1, mbr=0, mbr_temperature=0.6, guide=true,
                        verify=false, refine=false, encoder=None))]
    #[allow(clippy::too_many_arguments)]
    fn bundled(
        py: Python<'_>,
        config: Option<&Bound<'_, PyAny>>,
        beam: usize,
        mbr: usize,
        mbr_temperature: f32,
        guide: bool,
        verify: bool,
        refine: bool,
        encoder: Option<&Bound<'_, crate::encoder::MpnetEncoder>>,
    ) -> PyResult<Self> {
        let (bank, model) = (None, None);
        Self::py_new(
            py,
            bank,
            model,
            config,
            beam,
            mbr,
            mbr_temperature,
            guide,
            verify,
            refine,
            encoder,
        )
    }

    /// Counters: decodes, errors, latency percentiles (microseconds), as a dict.
    fn statistics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_python(py, &self.inner.unverified().statistics())
    }
});

/// Per input the bank's phrase or the generator's text, by a rule fitted on labelled
/// embeddings: never worse than the better of the two on the bundled samples.
///
/// ``HybridDecoder(bank_dir=None, model_path=None, config=None, *, beam=1, mbr=0,
/// mbr_temperature=0.6, guide=True, verify=False, refine=False, encoder=None)``, arguments as for the other two
/// decoders.
///
/// ``verify=True`` re-embeds each answer beside its alternatives with ``encoder`` (None: the
/// default ``MpnetEncoder()``) and returns the closest, its cosine as ``roundtrip_cosine``
/// (``lwdec --verify``); ``refine=True`` then improves it by a word-level search judged by the
/// encoder and the bundled model of English (``--refine``). Both read the config's ``verify``
/// section.
#[pyclass(frozen, module = "lightweight_decoder")]
pub struct HybridDecoder {
    inner: Verifiable<ld::HybridDecoder>,
}

decoder_methods!(HybridDecoder, "HybridDecoder", {
    #[new]
    #[pyo3(signature = (bank_dir=None, model_path=None, config=None, *, beam=1, mbr=0,
                        mbr_temperature=0.6, guide=true, verify=false, refine=false,
                        encoder=None))]
    #[allow(clippy::too_many_arguments)]
    fn py_new(
        py: Python<'_>,
        bank_dir: Option<PathBuf>,
        model_path: Option<PathBuf>,
        config: Option<&Bound<'_, PyAny>>,
        beam: usize,
        mbr: usize,
        mbr_temperature: f32,
        guide: bool,
        verify: bool,
        refine: bool,
        encoder: Option<&Bound<'_, crate::encoder::MpnetEncoder>>,
    ) -> PyResult<Self> {
        let options = decode_options(beam, mbr, mbr_temperature)?;
        let args = Arguments::new(bank_dir, model_path, config, options, guide);
        let inner = open(
            py,
            args,
            Verification {
                verify,
                refine,
                encoder,
            },
            DecoderBuilder::hybrid,
        )?;
        Ok(HybridDecoder { inner })
    }

    /// The bundled bank and model with ``config`` (the shipped rule by default).
    #[staticmethod]
    #[pyo3(signature = (config=None, *, beam=1, mbr=0, mbr_temperature=0.6, guide=true,
                        verify=false, refine=false, encoder=None))]
    #[allow(clippy::too_many_arguments)]
    fn default(
        py: Python<'_>,
        config: Option<&Bound<'_, PyAny>>,
        beam: usize,
        mbr: usize,
        mbr_temperature: f32,
        guide: bool,
        verify: bool,
        refine: bool,
        encoder: Option<&Bound<'_, crate::encoder::MpnetEncoder>>,
    ) -> PyResult<Self> {
        let (bank, model) = (None, None);
        Self::py_new(
            py,
            bank,
            model,
            config,
            beam,
            mbr,
            mbr_temperature,
            guide,
            verify,
            refine,
            encoder,
        )
    }

    /// Counters of the bank and of the generator: ``{"bank": {...}, "generator": {...}}``.
    fn statistics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let both = serde_json::json!({
            "bank": self.inner.unverified().bank().statistics(),
            "generator": self.inner.unverified().generator().statistics(),
        });
        to_python(py, &both)
    }

    /// The bank's health: ``{"status": ..., "reasons": [...]}``.
    fn health<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_python(py, &self.inner.unverified().bank().health())
    }
});
