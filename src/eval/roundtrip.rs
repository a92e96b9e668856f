//! The summary `lwdec eval --round-trip` reports of the round-trip cosines
//! ([`crate::roundtrip::roundtrip_cosines`]): what `scripts/reembed.py` prints.

use serde::Serialize;

/// The mean and quantiles of a set of cosines (quantiles interpolated linearly between the
/// sorted values, as NumPy's `quantile`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CosineSummary {
    /// Values summarised.
    pub rows: usize,
    /// Mean (summed in f64).
    pub mean: f64,
    /// 10th percentile.
    pub p10: f64,
    /// Median.
    pub median: f64,
    /// 90th percentile.
    pub p90: f64,
}

impl CosineSummary {
    /// The summary of `values` (all zero for none).
    pub fn of(values: &[f32]) -> Self {
        let mut sorted: Vec<f64> = values.iter().map(|&v| f64::from(v)).collect();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let quantile = |q: f64| {
            if n == 0 {
                return 0.0;
            }
            let at = q * (n - 1) as f64;
            let (low, high) = (at.floor() as usize, at.ceil() as usize);
            sorted[low] + (sorted[high] - sorted[low]) * (at - low as f64)
        };
        CosineSummary {
            rows: n,
            mean: if n == 0 {
                0.0
            } else {
                sorted.iter().sum::<f64>() / n as f64
            },
            p10: quantile(0.1),
            median: quantile(0.5),
            p90: quantile(0.9),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_as_numpy() {
        // numpy.quantile([0.1, 0.4, 0.2, 0.9], [0.1, 0.5, 0.9]) = [0.13, 0.3, 0.75]
        let s = CosineSummary::of(&[0.1, 0.4, 0.2, 0.9]);
        assert_eq!(s.rows, 4);
        assert!((s.mean - 0.4).abs() < 1e-7, "{s:?}");
        assert!((s.p10 - 0.13).abs() < 1e-7, "{s:?}");
        assert!((s.median - 0.3).abs() < 1e-7, "{s:?}");
        assert!((s.p90 - 0.75).abs() < 1e-7, "{s:?}");
        assert_eq!(CosineSummary::of(&[]).rows, 0);
    }
}
