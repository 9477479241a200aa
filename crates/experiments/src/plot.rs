//! The simulator's report: SVG plots drawn with `plotters` (SVG backend only: text is written as
//! `<text>` elements, so no font file or system library is needed) and `summary.json`.
//!
//! - [`regret_svg`]: cumulative regret per step of Thompson sampling, LinUCB and uniform random.
//! - [`uplift_svg`]: the A/B test's estimated relative uplift as exposures accumulate, with its
//!   fixed-horizon and always-valid 95% bands and the planted uplift.
//! - [`arms_svg`]: Thompson's share of pulls per arm, by window of steps.
//! - [`write_report`]: the three plots and `summary.json` into a directory.
//!
//! Each plot is a [`Plot`]: the SVG text and the names of its series, in drawing order. Every
//! line series is one `<polyline>` drawn [`SERIES_WIDTH`] pixels wide (the axes and ticks are
//! 1-pixel polylines) and every band one `<polygon>`; legends use rectangles, so those elements
//! can be counted against the series.

use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::simulate::{ARMS, Simulation};

/// The size of every plot in pixels.
pub const SIZE: (u32, u32) = (960, 540);
/// The stroke width of every line series (axes are 1 pixel wide).
pub const SERIES_WIDTH: u32 = 2;
/// The most points a line is drawn with (longer series are thinned evenly).
pub const MAX_POINTS: usize = 1_000;

/// One drawn plot.
#[derive(Debug, Clone, PartialEq)]
pub struct Plot {
    /// The SVG document.
    pub svg: String,
    /// The series drawn, in order; each is one `<polyline>` (a line) or `<polygon>` (a band).
    pub series: Vec<String>,
}

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// Plotters failed to draw.
    #[error("drawing {plot}: {message}")]
    Draw {
        /// The plot.
        plot: &'static str,
        /// What plotters said.
        message: String,
    },
    /// A file could not be written.
    #[error("writing {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The summary could not be serialised.
    #[error("serialising the summary: {0}")]
    Json(#[from] serde_json::Error),
}

fn draw_error(plot: &'static str) -> impl Fn(Box<dyn std::error::Error + '_>) -> PlotError {
    move |e| PlotError::Draw { plot, message: e.to_string() }
}

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(23, 190, 207),
];

/// Every `k`-th index of `0..n` so that at most [`MAX_POINTS`] remain, always with the last.
fn thin(n: usize) -> Vec<usize> {
    if n == 0 {
        return Vec::new();
    }
    let k = n.div_ceil(MAX_POINTS).max(1);
    let mut idx: Vec<usize> = (0..n).step_by(k).collect();
    if idx.last() != Some(&(n - 1)) {
        idx.push(n - 1);
    }
    idx
}

fn legend_box(color: RGBColor) -> impl Fn((i32, i32)) -> Rectangle<(i32, i32)> {
    move |(x, y)| Rectangle::new([(x, y - 4), (x + 16, y + 4)], color.filled())
}

/// Cumulative regret of the three policies against the per-visitor oracle.
pub fn regret_svg(sim: &Simulation) -> Result<Plot, PlotError> {
    let e = draw_error("regret");
    let r = &sim.regret;
    let lines: [(&str, &Vec<f64>); 3] =
        [("Thompson sampling", &r.thompson), ("LinUCB (contextual)", &r.linucb), ("uniform random", &r.random)];
    let n = r.thompson.len();
    let y_max = lines.iter().flat_map(|(_, v)| v.last().copied()).fold(1.0, f64::max) * 1.05;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|x| e(Box::new(x)))?;
        let mut chart = ChartBuilder::on(&root)
            .caption("Cumulative regret against the per-visitor oracle", ("sans-serif", 22))
            .margin(12)
            .margin_right(36)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..n as f64, 0f64..y_max)
            .map_err(|x| e(Box::new(x)))?;
        chart
            .configure_mesh()
            .x_desc("step (visitor)")
            .y_desc("expected conversions lost")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(|x| e(Box::new(x)))?;
        for (i, (name, values)) in lines.iter().enumerate() {
            let color = COLORS[i];
            let points = thin(values.len()).into_iter().map(|j| ((j + 1) as f64, values[j]));
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(SERIES_WIDTH)))
                .map_err(|x| e(Box::new(x)))?
                .label(*name)
                .legend(legend_box(color));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()
            .map_err(|x| e(Box::new(x)))?;
        root.present().map_err(|x| e(Box::new(x)))?;
    }
    Ok(Plot { svg, series: lines.iter().map(|(n, _)| n.to_string()).collect() })
}

/// The A/B test's estimate with its fixed and always-valid bands and the planted uplift.
pub fn uplift_svg(sim: &Simulation) -> Result<Plot, PlotError> {
    let e = draw_error("uplift");
    let path = &sim.ab_path;
    let truth = sim.summary.ab.true_uplift * 100.0;
    let x_max = sim.summary.ab.exposures as f64;
    // Clip the y range: the first checkpoints' bands are very wide.
    let y_min = (truth - 40.0).min(-10.0);
    let y_max = truth + 40.0;
    let clip = |v: f64| (v * 100.0).clamp(y_min, y_max);
    let idx = thin(path.len());
    let band = |low: fn(&crate::simulate::AbPoint) -> f64, high: fn(&crate::simulate::AbPoint) -> f64| {
        let upper = idx.iter().map(|&i| (path[i].exposures as f64, clip(high(&path[i]))));
        let lower = idx.iter().rev().map(|&i| (path[i].exposures as f64, clip(low(&path[i]))));
        upper.chain(lower).collect::<Vec<_>>()
    };
    let mut svg = String::new();
    let series = vec![
        "always-valid 95% interval".to_string(),
        "fixed-horizon 95% interval".to_string(),
        "estimated uplift".to_string(),
        "planted uplift".to_string(),
        "no effect".to_string(),
    ];
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|x| e(Box::new(x)))?;
        let mut chart = ChartBuilder::on(&root)
            .caption("A/B test: estimated relative uplift as exposures accumulate", ("sans-serif", 22))
            .margin(12)
            .margin_right(36)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..x_max, y_min..y_max)
            .map_err(|x| e(Box::new(x)))?;
        chart
            .configure_mesh()
            .x_desc("exposures (both arms)")
            .y_desc("relative uplift (%)")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(|x| e(Box::new(x)))?;
        // Opaque pale colours: the fixed band lies inside the always-valid one and hides it there,
        // and each legend swatch is the colour seen on the plot.
        let seq_color = RGBColor(253, 208, 162);
        chart
            .draw_series(std::iter::once(Polygon::new(
                band(|p| p.sequential_low, |p| p.sequential_high),
                seq_color.filled(),
            )))
            .map_err(|x| e(Box::new(x)))?
            .label(series[0].as_str())
            .legend(legend_box(seq_color));
        let fixed_color = RGBColor(158, 202, 225);
        chart
            .draw_series(std::iter::once(Polygon::new(band(|p| p.ci_low, |p| p.ci_high), fixed_color.filled())))
            .map_err(|x| e(Box::new(x)))?
            .label(series[1].as_str())
            .legend(legend_box(fixed_color));
        chart
            .draw_series(LineSeries::new(
                idx.iter().map(|&i| (path[i].exposures as f64, clip(path[i].relative))),
                BLACK.stroke_width(SERIES_WIDTH),
            ))
            .map_err(|x| e(Box::new(x)))?
            .label(series[2].as_str())
            .legend(legend_box(BLACK));
        chart
            .draw_series(LineSeries::new([(0.0, truth), (x_max, truth)], COLORS[2].stroke_width(SERIES_WIDTH)))
            .map_err(|x| e(Box::new(x)))?
            .label(series[3].as_str())
            .legend(legend_box(COLORS[2]));
        let grey = RGBColor(120, 120, 120);
        chart
            .draw_series(LineSeries::new([(0.0, 0.0), (x_max, 0.0)], grey.stroke_width(SERIES_WIDTH)))
            .map_err(|x| e(Box::new(x)))?
            .label(series[4].as_str())
            .legend(legend_box(grey));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()
            .map_err(|x| e(Box::new(x)))?;
        root.present().map_err(|x| e(Box::new(x)))?;
    }
    Ok(Plot { svg, series })
}

/// Thompson's share of pulls per arm in each window of steps.
pub fn arms_svg(sim: &Simulation) -> Result<Plot, PlotError> {
    let e = draw_error("arms");
    let windows = &sim.thompson_arm_shares;
    let x_max = windows.last().map_or(1.0, |w| w.step as f64);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|x| e(Box::new(x)))?;
        let mut chart = ChartBuilder::on(&root)
            .caption("Thompson sampling: share of pulls per arm", ("sans-serif", 22))
            .margin(12)
            .margin_right(36)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..x_max, 0f64..1.0)
            .map_err(|x| e(Box::new(x)))?;
        chart
            .configure_mesh()
            .x_desc("step (end of a window of steps)")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_desc("share of the window's pulls")
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(|x| e(Box::new(x)))?;
        for (arm, name) in ARMS.iter().enumerate() {
            let color = COLORS[arm % COLORS.len()];
            let label = if arm == sim.summary.bandits.best_arm {
                format!("{name} (best on average)")
            } else {
                name.to_string()
            };
            chart
                .draw_series(LineSeries::new(
                    windows.iter().map(|w| (w.step as f64, w.shares[arm])),
                    color.stroke_width(SERIES_WIDTH),
                ))
                .map_err(|x| e(Box::new(x)))?
                .label(label)
                .legend(legend_box(color));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::MiddleRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()
            .map_err(|x| e(Box::new(x)))?;
        root.present().map_err(|x| e(Box::new(x)))?;
    }
    Ok(Plot { svg, series: ARMS.iter().map(|s| s.to_string()).collect() })
}

/// Writes `regret.svg`, `uplift.svg`, `arms.svg` and `summary.json` into `dir` (created if
/// missing) and returns their paths.
pub fn write_report(sim: &Simulation, dir: &Path) -> Result<Vec<PathBuf>, PlotError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| PlotError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut written = Vec::new();
    for (name, plot) in
        [("regret.svg", regret_svg(sim)?), ("uplift.svg", uplift_svg(sim)?), ("arms.svg", arms_svg(sim)?)]
    {
        let path = dir.join(name);
        std::fs::write(&path, plot.svg).map_err(io(&path))?;
        written.push(path);
    }
    let path = dir.join("summary.json");
    let mut json = serde_json::to_string_pretty(&sim.summary)?;
    json.push('\n');
    std::fs::write(&path, json).map_err(io(&path))?;
    written.push(path);
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thinning_keeps_the_ends_and_bounds_the_count() {
        assert!(thin(0).is_empty());
        assert_eq!(thin(3), [0, 1, 2]);
        let t = thin(20_000);
        assert!(t.len() <= MAX_POINTS + 1);
        assert_eq!((t[0], *t.last().unwrap()), (0, 19_999));
    }
}
