//! Plots of certified accuracy against radius, as SVG or PNG, with plotters.
//!
//! Text is measured (SVG) and drawn (PNG) with DejaVu Sans, embedded in the crate (Bitstream Vera license,
//! `src/fonts/LICENSE-DejaVu.txt`), so plotting needs no system fonts or libraries.

use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::{Error, Result};

/// One line of a plot.
///
/// # Example
/// ```
/// use randomized_smoothing::plot::Curve;
///
/// let c = Curve::new("sigma = 0.25", vec![(0.0, 0.9), (0.5, 0.6), (1.0, 0.0)]);
/// assert!(!c.dashed);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    /// Legend entry.
    pub label: String,
    /// `(radius, accuracy)` points, in increasing radius.
    pub points: Vec<(f64, f64)>,
    /// Drawn dashed (used for the Appendix D lower bounds).
    pub dashed: bool,
}

impl Curve {
    /// A solid curve.
    ///
    /// # Example
    /// ```
    /// let c = randomized_smoothing::plot::Curve::new("a", vec![(0.0, 1.0)]);
    /// assert_eq!(c.label, "a");
    /// ```
    pub fn new(label: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Self {
            label: label.into(),
            points,
            dashed: false,
        }
    }

    /// The same curve, dashed.
    ///
    /// # Example
    /// ```
    /// assert!(randomized_smoothing::plot::Curve::new("a", vec![]).dashed().dashed);
    /// ```
    pub fn dashed(mut self) -> Self {
        self.dashed = true;
        self
    }
}

/// Registers the embedded font once, for the bitmap backend.
fn register_font() -> Result<()> {
    static FONT: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    FONT.get_or_init(|| {
        use std::io::Read;
        let mut bytes = Vec::new();
        flate2::read::GzDecoder::new(&include_bytes!("fonts/DejaVuSans.ttf.gz")[..])
            .read_to_end(&mut bytes)
            .map_err(|e| e.to_string())?;
        // plotters keeps fonts for the life of the program.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
            .map_err(|_| "the embedded font does not parse".to_string())
    })
    .clone()
    .map_err(|reason| Error::InvalidParameter {
        name: "font",
        reason,
    })
}

/// Plots certified accuracy (0 to 1) against radius for each curve, to `path`: SVG if
/// it ends in `.svg`, PNG if in `.png` (1000x600 pixels).
///
/// # Errors
/// [`Error::InvalidParameter`] for another extension or no points at all; [`Error::Io`] if
/// the file cannot be written.
///
/// # Example
/// ```
/// use randomized_smoothing::plot::{Curve, plot_certified_accuracy};
///
/// let path = std::env::temp_dir().join(format!("doc-plot-{}.svg", std::process::id()));
/// let curves = [Curve::new("sigma = 0.25", vec![(0.0, 0.9), (0.5, 0.6), (0.75, 0.0)])];
/// plot_certified_accuracy(&curves, "digits", &path)?;
/// assert!(std::fs::read_to_string(&path).unwrap().contains("<svg"));
/// # std::fs::remove_file(path).ok();
/// # Ok::<(), randomized_smoothing::Error>(())
/// ```
pub fn plot_certified_accuracy(curves: &[Curve], title: &str, path: &Path) -> Result<()> {
    let max_radius = curves
        .iter()
        .flat_map(|c| c.points.iter().map(|p| p.0))
        .fold(f64::NAN, f64::max);
    if !max_radius.is_finite() {
        return Err(Error::InvalidParameter {
            name: "curves",
            reason: "no points to plot".into(),
        });
    }
    let x_max = if max_radius > 0.0 {
        max_radius * 1.05
    } else {
        1.0
    };
    let io = |e: String| Error::Io(format!("{}: {e}", path.display()));
    match path.extension().and_then(|e| e.to_str()) {
        Some("svg") => {
            // Text is measured with the embedded font to lay the chart out.
            register_font()?;
            let root = SVGBackend::new(path, (1000, 600)).into_drawing_area();
            draw(&root, curves, title, x_max).map_err(io)?;
            root.present().map_err(|e| io(e.to_string()))
        }
        Some("png") => {
            register_font()?;
            let root = BitMapBackend::new(path, (1000, 600)).into_drawing_area();
            draw(&root, curves, title, x_max).map_err(io)?;
            root.present().map_err(|e| io(e.to_string()))
        }
        _ => Err(Error::InvalidParameter {
            name: "path",
            reason: format!("{} does not end in .svg or .png", path.display()),
        }),
    }
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    curves: &[Curve],
    title: &str,
    x_max: f64,
) -> std::result::Result<(), String> {
    let text = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(text)?;
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 26))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..x_max, 0.0..1.0)
        .map_err(text)?;
    chart
        .configure_mesh()
        .x_desc("radius (l2, pixels in [0, 1])")
        .y_desc("certified accuracy")
        .label_style(("sans-serif", 16))
        .axis_desc_style(("sans-serif", 18))
        .draw()
        .map_err(text)?;
    let mut solid = 0usize;
    for curve in curves {
        // A dashed curve takes the colour of the solid curve before it (its estimate).
        if !curve.dashed {
            solid += 1;
        }
        let style = Palette99::pick(solid.saturating_sub(1)).stroke_width(2);
        let points = curve.points.iter().copied();
        let series = if curve.dashed {
            chart.draw_series(DashedLineSeries::new(points, 8, 5, style))
        } else {
            chart.draw_series(LineSeries::new(points, style))
        };
        series
            .map_err(text)?
            .label(&curve.label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 16))
        .draw()
        .map_err(text)?;
    Ok(())
}
