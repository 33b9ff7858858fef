//! Descriptive statistics and the chi-square independence test.

use serde::Serialize;

/// Percentile summary of a sample (milliseconds or any unit).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Summary {
    pub count: usize,
    pub mean: f64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl Summary {
    pub fn of(values: &[f64]) -> Self {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return Self::default();
        }
        v.sort_by(f64::total_cmp);
        Self {
            count: v.len(),
            mean: v.iter().sum::<f64>() / v.len() as f64,
            p50: percentile_sorted(&v, 50.0),
            p95: percentile_sorted(&v, 95.0),
            p99: percentile_sorted(&v, 99.0),
            max: v[v.len() - 1],
        }
    }
}

/// Nearest-rank percentile of an ascending sample: the smallest value with
/// at least `p`% of the sample at or below it. `0.0` for an empty sample.
pub fn percentile_sorted(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Result of a chi-square test of independence.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ChiSquare {
    pub statistic: f64,
    pub degrees_of_freedom: usize,
    pub p_value: f64,
}

/// Pearson's chi-square test of independence of a contingency table
/// (rows x columns of counts). Rows or columns that are all zero are dropped.
pub fn chi_square_independence(table: &[Vec<u64>]) -> Option<ChiSquare> {
    let rows: Vec<&Vec<u64>> = table.iter().filter(|r| r.iter().sum::<u64>() > 0).collect();
    let ncols = rows.first()?.len();
    let col_sums: Vec<u64> = (0..ncols)
        .map(|c| rows.iter().map(|r| r[c]).sum())
        .collect();
    let live_cols: Vec<usize> = (0..ncols).filter(|&c| col_sums[c] > 0).collect();
    if rows.len() < 2 || live_cols.len() < 2 {
        return None;
    }
    let total: f64 = col_sums.iter().sum::<u64>() as f64;
    let mut statistic = 0.0;
    for r in &rows {
        let row_sum = r.iter().sum::<u64>() as f64;
        for &c in &live_cols {
            let expected = row_sum * col_sums[c] as f64 / total;
            let d = r[c] as f64 - expected;
            statistic += d * d / expected;
        }
    }
    let degrees_of_freedom = (rows.len() - 1) * (live_cols.len() - 1);
    Some(ChiSquare {
        statistic,
        degrees_of_freedom,
        p_value: chi_square_sf(statistic, degrees_of_freedom as f64),
    })
}

/// Survival function of the chi-square distribution: P(X >= x) with `k`
/// degrees of freedom, i.e. the regularized upper incomplete gamma Q(k/2, x/2).
pub fn chi_square_sf(x: f64, k: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    1.0 - regularized_lower_gamma(k / 2.0, x / 2.0)
}

/// P(a, x) = gamma(a, x) / Gamma(a): series for x < a + 1, Lentz's
/// continued fraction for the complement otherwise (Numerical Recipes 6.2).
pub fn regularized_lower_gamma(a: f64, x: f64) -> f64 {
    if x <= 0.0 || a <= 0.0 {
        return 0.0;
    }
    let log_prefactor = a * x.ln() - x - ln_gamma(a);
    if x < a + 1.0 {
        let mut term = 1.0 / a;
        let mut sum = term;
        let mut n = a;
        for _ in 0..10_000 {
            n += 1.0;
            term *= x / n;
            sum += term;
            if term.abs() < sum.abs() * 1e-15 {
                break;
            }
        }
        (sum.ln() + log_prefactor).exp().clamp(0.0, 1.0)
    } else {
        const TINY: f64 = 1e-300;
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / TINY;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..10_000 {
            let an = -(i as f64) * (i as f64 - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < TINY {
                d = TINY;
            }
            c = b + an / c;
            if c.abs() < TINY {
                c = TINY;
            }
            d = 1.0 / d;
            let delta = d * c;
            h *= delta;
            if (delta - 1.0).abs() < 1e-15 {
                break;
            }
        }
        (1.0 - (log_prefactor.exp() * h)).clamp(0.0, 1.0)
    }
}

/// ln Gamma(x) for x > 0 (Lanczos, g = 7, n = 9; ~15 significant digits).
pub fn ln_gamma(x: f64) -> f64 {
    const COEF: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Gamma(x) Gamma(1 - x) = pi / sin(pi x).
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let t = x + 7.5;
    let mut sum = COEF[0];
    for (i, c) in COEF.iter().enumerate().skip(1) {
        sum += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

/// Empirical CDF points (value, fraction at or below) of a sample, thinned
/// to at most `max_points`.
pub fn cdf_points(values: &[f64], max_points: usize) -> Vec<(f64, f64)> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return Vec::new();
    }
    let step = (n / max_points.max(1)).max(1);
    let mut points: Vec<(f64, f64)> = (0..n)
        .step_by(step)
        .map(|i| (v[i], (i + 1) as f64 / n as f64))
        .collect();
    points.push((v[n - 1], 1.0));
    points
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn nearest_rank_percentiles_of_one_to_hundred() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        let s = Summary::of(&v);
        assert_eq!(s.p50, 50.0);
        assert_eq!(s.p95, 95.0);
        assert_eq!(s.p99, 99.0);
        assert_eq!(s.max, 100.0);
        assert!(close(s.mean, 50.5, 1e-12));
    }

    #[test]
    fn percentile_of_tiny_samples() {
        assert_eq!(percentile_sorted(&[], 50.0), 0.0);
        assert_eq!(percentile_sorted(&[7.0], 99.0), 7.0);
        assert_eq!(percentile_sorted(&[1.0, 2.0], 50.0), 1.0);
        assert_eq!(percentile_sorted(&[1.0, 2.0], 51.0), 2.0);
    }

    #[test]
    fn summary_ignores_order_and_nan() {
        let s = Summary::of(&[3.0, f64::NAN, 1.0, 2.0]);
        assert_eq!(s.count, 3);
        assert_eq!(s.p50, 2.0);
    }

    #[test]
    fn ln_gamma_matches_factorials() {
        assert!(close(ln_gamma(1.0), 0.0, 1e-12));
        assert!(close(ln_gamma(5.0), 24f64.ln(), 1e-12));
        assert!(close(
            ln_gamma(0.5),
            std::f64::consts::PI.sqrt().ln(),
            1e-12
        ));
    }

    #[test]
    fn chi_square_sf_matches_tables() {
        // Critical values: P(X >= 3.841 | 1 df) = 0.05, P(X >= 16.919 | 9) = 0.05,
        // P(X >= 103.010 | 81) = 0.05, P(X >= 2 | 2) = e^-1.
        assert!(close(chi_square_sf(3.841_458_820_694_124, 1.0), 0.05, 1e-9));
        assert!(close(chi_square_sf(16.918_977_604_620_45, 9.0), 0.05, 1e-9));
        assert!(close(chi_square_sf(2.0, 2.0), (-1.0f64).exp(), 1e-12));
        assert!(close(chi_square_sf(103.010, 81.0), 0.05, 1e-4));
        assert!(close(chi_square_sf(0.0, 5.0), 1.0, 0.0));
    }

    #[test]
    fn independent_table_has_zero_statistic() {
        let t = vec![vec![10, 20], vec![20, 40]];
        let r = chi_square_independence(&t).expect("test fixture is valid");
        assert!(close(r.statistic, 0.0, 1e-12));
        assert_eq!(r.degrees_of_freedom, 1);
        assert!(close(r.p_value, 1.0, 1e-9));
    }

    #[test]
    fn diagonal_table_is_strongly_dependent() {
        let t = vec![vec![50, 0], vec![0, 50]];
        let r = chi_square_independence(&t).expect("test fixture is valid");
        assert!(close(r.statistic, 100.0, 1e-9));
        assert!(r.p_value < 1e-20);
    }

    #[test]
    fn empty_rows_are_dropped() {
        let t = vec![vec![5, 5], vec![0, 0], vec![5, 5]];
        assert_eq!(
            chi_square_independence(&t)
                .expect("test fixture is valid")
                .degrees_of_freedom,
            1
        );
        assert!(chi_square_independence(&[vec![1, 2]]).is_none());
    }

    #[test]
    fn cdf_ends_at_one() {
        let p = cdf_points(&[3.0, 1.0, 2.0], 100);
        assert_eq!(p.first().copied(), Some((1.0, 1.0 / 3.0)));
        assert_eq!(p.last().copied(), Some((3.0, 1.0)));
    }
}
