//! What decoding returns to Python: [`Decoded`] and its [`Candidate`]s, and JSON-shaped values
//! (statistics, health, manifests) as Python dicts.

use lightweight_decoder as ld;
use pyo3::prelude::*;
use pyo3::types::PyList;
use serde::Serialize;

/// A phrase the decoder considered for an input.
#[pyclass(frozen, get_all, module = "lightweight_decoder")]
#[derive(Clone)]
pub struct Candidate {
    /// The candidate text.
    pub text: String,
    /// Cosine similarity to the input (approximate for compressed banks).
    pub similarity: f32,
    /// Bank phrase id, or None.
    pub phrase_id: Option<usize>,
}

#[pymethods]
impl Candidate {
    fn __repr__(&self) -> String {
        let id = self
            .phrase_id
            .map_or("None".to_string(), |id| id.to_string());
        format!(
            "Candidate(text={:?}, similarity={:.4}, phrase_id={id})",
            self.text, self.similarity
        )
    }
}

/// The text decoded from one embedding.
///
/// Attributes: ``text``, ``confidence`` (in [0, 1]), ``low_confidence`` (the best match was
/// below the similarity threshold), ``source`` (``"phrase_bank"`` or ``"generative"``),
/// ``phrase_ids`` (the bank phrases the text is made of, or None for generated text) and
/// ``candidates`` (the nearest bank phrases, best first).
#[pyclass(frozen, module = "lightweight_decoder")]
pub struct Decoded {
    inner: ld::Decoded,
}

impl From<ld::Decoded> for Decoded {
    fn from(inner: ld::Decoded) -> Self {
        Decoded { inner }
    }
}

#[pymethods]
impl Decoded {
    /// The decoded text.
    #[getter]
    fn text(&self) -> &str {
        &self.inner.text
    }

    /// Confidence in [0, 1].
    #[getter]
    fn confidence(&self) -> f32 {
        self.inner.confidence
    }

    /// True when the best match was below the similarity threshold (lenient mode).
    #[getter]
    fn low_confidence(&self) -> bool {
        self.inner.low_confidence
    }

    /// ``"phrase_bank"``, ``"generative"`` or ``"refined"``.
    #[getter]
    fn source(&self) -> &'static str {
        match self.inner.source {
            ld::Source::PhraseBank { .. } => "phrase_bank",
            ld::Source::Generative => "generative",
            ld::Source::Refined => "refined",
        }
    }

    /// Ids of the bank phrases the text is made of, in output order; None for generated text.
    #[getter]
    fn phrase_ids(&self) -> Option<Vec<usize>> {
        match &self.inner.source {
            ld::Source::PhraseBank { phrase_ids } => Some(phrase_ids.clone()),
            ld::Source::Generative | ld::Source::Refined => None,
        }
    }

    /// Cosine of the text's re-embedding with the input when an encoder verified it, else
    /// None.
    #[getter]
    fn roundtrip_cosine(&self) -> Option<f32> {
        self.inner.roundtrip_cosine
    }

    /// The top candidates with their similarities, best first.
    #[getter]
    fn candidates(&self) -> Vec<Candidate> {
        self.inner
            .candidates
            .iter()
            .map(|c| Candidate {
                text: c.text.clone(),
                similarity: c.similarity,
                phrase_id: c.phrase_id,
            })
            .collect()
    }

    /// The result as a dict, with the keys of ``lwdec decode``'s JSON lines (less ``row``).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_python(py, &self.inner)
    }

    fn __repr__(&self) -> String {
        format!(
            "Decoded(text={:?}, confidence={:.4}, source={:?})",
            self.inner.text,
            self.inner.confidence,
            self.source()
        )
    }
}

/// A list of [`Decoded`] objects.
pub fn decoded_list(py: Python<'_>, decoded: Vec<ld::Decoded>) -> PyResult<Bound<'_, PyList>> {
    PyList::new(py, decoded.into_iter().map(Decoded::from))
}

/// Any serialisable value as the Python object its JSON reads as (dicts, lists, numbers);
/// an `f32` becomes the float of its exact value, as the getters and `lwdec`'s JSON give it.
pub fn to_python<'py>(py: Python<'py>, value: &impl Serialize) -> PyResult<Bound<'py, PyAny>> {
    let json = serde_json::to_value(value)
        .and_then(|v| serde_json::to_string(&v))
        .map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(e.to_string()))?;
    py.import("json")?.call_method1("loads", (json,))
}
