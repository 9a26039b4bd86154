//! Means and 95 % confidence intervals over seeds.
//!
//! Seeds are independent replications, so the interval is Student's t:
//! mean ± t(0.975, n−1) · s / √n, with `s` the sample standard deviation.
//! With one seed there is no spread to estimate and the interval is the
//! single value.

use serde::Serialize;

/// Two-sided 97.5 % quantiles of Student's t for 1 to 30 degrees of freedom.
const T975: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
    2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
    2.052, 2.048, 2.045, 2.042,
];

/// t(0.975, df); beyond 30 degrees of freedom, a smooth approach to 1.96.
pub fn t975(df: usize) -> f64 {
    match df {
        0 => f64::NAN,
        1..=30 => T975[df - 1],
        // Cornish-Fisher to first order: z + (z³ + z) / (4 df), z = 1.959964.
        _ => {
            let z = 1.959964f64;
            z + (z.powi(3) + z) / (4.0 * df as f64)
        }
    }
}

/// Mean and 95 % interval of a sample.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Estimate {
    pub mean: f64,
    pub low: f64,
    pub high: f64,
    /// Values the estimate is over.
    pub n: usize,
}

impl Estimate {
    pub fn of(xs: &[f64]) -> Option<Estimate> {
        let n = xs.len();
        if n == 0 {
            return None;
        }
        let mean = xs.iter().sum::<f64>() / n as f64;
        if n == 1 {
            return Some(Estimate {
                mean,
                low: mean,
                high: mean,
                n,
            });
        }
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        let half = t975(n - 1) * (var / n as f64).sqrt();
        Some(Estimate {
            mean,
            low: mean - half,
            high: mean + half,
            n,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_of_a_known_sample() {
        // 2, 4, 4, 4, 5, 5, 7, 9: mean 5, s² = 32/7, t(0.975, 7) = 2.365.
        let e = Estimate::of(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]).unwrap();
        let half = 2.365 * (32.0f64 / 7.0 / 8.0).sqrt();
        assert_eq!(e.mean, 5.0);
        assert!((e.high - 5.0 - half).abs() < 1e-12 && (5.0 - e.low - half).abs() < 1e-12);
        assert_eq!(Estimate::of(&[3.0]).unwrap().low, 3.0);
        assert!(Estimate::of(&[]).is_none());
    }

    #[test]
    fn t_quantiles_approach_the_normal() {
        assert!((t975(31) - 2.04).abs() < 0.01, "{}", t975(31));
        assert!((t975(1000) - 1.962).abs() < 0.002, "{}", t975(1000));
        assert!(t975(30) > t975(31) && t975(31) > t975(100));
    }
}
