//! SVG charts of a run: queue length, admissions/s, sold over time, and the
//! admission latency CDF.

use std::path::Path;

use plotters::prelude::*;

use crate::sampler::{Sample, PERIOD};

/// One named line of (x, y) points.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

const COLORS: [RGBColor; 8] = [
    BLUE,
    RED,
    GREEN,
    MAGENTA,
    CYAN,
    BLACK,
    RGBColor(255, 140, 0),
    RGBColor(128, 0, 128),
];

/// A line chart written to `path`.
pub fn line_chart(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> Result<(), String> {
    let all = series.iter().flat_map(|s| s.points.iter());
    let (mut x_max, mut y_max) = (0.0f64, 0.0f64);
    let mut x_min = f64::INFINITY;
    for &(x, y) in all {
        x_max = x_max.max(x);
        x_min = x_min.min(x);
        y_max = y_max.max(y);
    }
    if !x_min.is_finite() {
        x_min = 0.0;
    }
    let x_min = x_min.min(0.0);
    let x_max = if x_max > x_min { x_max } else { x_min + 1.0 };
    let y_max = if y_max > 0.0 { y_max * 1.05 } else { 1.0 };

    let root = SVGBackend::new(path, (900, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(x_min..x_max, 0.0..y_max)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(
                s.points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?
            .label(s.name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
    }
    if series.len() > 1 {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())?;
    }
    root.present().map_err(|e| e.to_string())?;
    Ok(())
}

/// Draws every chart of a run into `dir`; returns the files written.
pub fn draw_run(
    dir: &Path,
    prefix: &str,
    samples: &[Sample],
    latencies_ms: &[f64],
) -> Result<Vec<String>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let ok: Vec<&Sample> = samples.iter().filter(|s| s.ok).collect();
    let mut files = Vec::new();
    let mut draw =
        |name: &str, title: &str, x: &str, y: &str, series: Vec<Series>| -> Result<(), String> {
            let path = dir.join(format!("{prefix}-{name}.svg"));
            line_chart(&path, title, x, y, &series)?;
            files.push(path.display().to_string());
            Ok(())
        };
    draw(
        "queue",
        "Queue length (waiting) over time",
        "seconds",
        "waiting users",
        vec![Series {
            name: "waiting".into(),
            points: ok.iter().map(|s| (s.t_secs, s.waiting as f64)).collect(),
        }],
    )?;
    draw(
        "admissions",
        "Admissions per second (from admitted_total, 250 ms samples)",
        "seconds",
        "admissions / s",
        vec![Series {
            name: "admissions/s".into(),
            points: rates(&ok),
        }],
    )?;
    draw(
        "sold",
        "Units sold and paid over time",
        "seconds",
        "units",
        vec![
            Series {
                name: "sold".into(),
                points: ok.iter().map(|s| (s.t_secs, s.sold as f64)).collect(),
            },
            Series {
                name: "paid".into(),
                points: ok.iter().map(|s| (s.t_secs, s.paid as f64)).collect(),
            },
            Series {
                name: "held".into(),
                points: ok.iter().map(|s| (s.t_secs, s.held as f64)).collect(),
            },
        ],
    )?;
    let cdf = crate::stats::cdf_points(latencies_ms, 2000);
    draw(
        "latency-cdf",
        "Admission-to-client latency CDF",
        "ms (client receive - server issued_at_ms)",
        "fraction of admitted users",
        vec![Series {
            name: "cdf".into(),
            points: cdf,
        }],
    )?;
    Ok(files)
}

/// Admissions per second between consecutive samples.
fn rates(samples: &[&Sample]) -> Vec<(f64, f64)> {
    samples
        .windows(2)
        .map(|w| {
            let dt = (w[1].t_secs - w[0].t_secs).max(PERIOD.as_secs_f64() / 10.0);
            (
                w[1].t_secs,
                (w[1].admitted_total - w[0].admitted_total).max(0) as f64 / dt,
            )
        })
        .collect()
}
